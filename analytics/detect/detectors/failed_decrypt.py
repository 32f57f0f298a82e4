"""KMS.FailedDecryptBurst — one principal fails many decrypt-family calls in an hour.

Someone holding stolen ciphertexts (or a stolen role) that does not yet know which key opens
them tries key after key; a compromised workload probes what it may decrypt. Either way the
trail shows a burst of refusals from one actor. Applications also fail in bulk when a key is
disabled or a policy is tightened, so the rule asks for both volume *and* one of two signs
that this is not the actor's usual noise:

* the failures touch many keys (``min_keys``, default 5) — a broken app fails on its one key;
* or they are far above the actor's own history: more than ``baseline_factor`` (10) × the
  99th percentile of its hourly failure counts in ``ctx.history`` (an actor with no failures
  in the history has a baseline of 0, so ``min_failures`` alone decides).

Only refusals that say something about the caller count (access denied, wrong key, bad
ciphertext, disabled/missing/invalid-state key). ``DryRunOperationException`` (every DryRun call
"fails" by design) and ``ThrottlingException`` (load, not intent) are left out.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analytics.detect.baselines import MIN_WINDOW_DAYS
from analytics.detect.detectors._common import (
    KMS_SOURCE,
    from_source,
    history_of,
    hour_text,
    setting,
    shown,
)
from analytics.detect.detectors.base import (
    DetectionContext,
    HistoryTable,
    RuleDetector,
    empty_findings,
)
from analytics.lake import schema as s

DECRYPT_FAMILY: tuple[str, ...] = (
    "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
)  # fmt: skip
"""Calls that turn ciphertext into plaintext or mint data keys: what a key prober tries."""

COUNTED_ERRORS: tuple[str, ...] = (
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "IncorrectKeyException",
    "InvalidCiphertextException", "KMSInvalidStateException", "DisabledException",
    "NotFoundException",
)  # fmt: skip
"""CloudTrail logs authorisation failures as ``AccessDenied``; clients see the -Exception form."""

DEFAULTS: dict[str, Any] = {"min_failures": 20, "min_keys": 5, "baseline_factor": 10.0}
_QUANTILE = 0.99


def _counted_failure() -> pl.Expr:
    return from_source(KMS_SOURCE, DECRYPT_FAMILY) & pl.col(s.ERROR_CODE).is_in(COUNTED_ERRORS)


def _actor() -> pl.Expr:
    return pl.col(s.ACTOR).fill_null("unknown")


_HOUR, _FAILURES = "hour", "failures"


def _hourly_failures(events: pl.LazyFrame) -> pl.LazyFrame:
    return (
        events.filter(_counted_failure())
        .group_by(_actor().alias(s.ACTOR), pl.col(s.EVENT_TIME).dt.truncate("1h").alias(_HOUR))
        .agg(pl.len().cast(pl.Int64).alias(_FAILURES))
    )


HOURLY_FAILURES = HistoryTable(
    name="decrypt_failures_hourly",
    description=(
        "per (actor, hour) the decrypt-family calls refused with a counted error: the "
        "baseline of KMS.FailedDecryptBurst"
    ),
    build=_hourly_failures,
)


def _usual_hourly_failures(ctx: DetectionContext, actors: pl.Series) -> pl.DataFrame:
    """Per actor: the p99 of its hourly failure counts over the history, and its failing hours
    (an hour is within one day, so a day's rows never share an hour with another day's)."""
    return (
        history_of(ctx, HOURLY_FAILURES, pl.col(s.ACTOR).is_in(actors.implode()))
        .group_by(s.ACTOR, _HOUR)
        .agg(pl.col(_FAILURES).sum().alias("_hourly"))
        .group_by(s.ACTOR)
        .agg(
            pl.col("_hourly").quantile(_QUANTILE, interpolation="higher").alias("_p99"),
            pl.len().alias("_failing_hours"),
        )
        .collect()
    )


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per (actor, hour): enough counted failures, across many keys or far above baseline."""
    min_failures = setting(ctx, DEFAULTS, "min_failures", int)
    min_keys = setting(ctx, DEFAULTS, "min_keys", int)
    factor = setting(ctx, DEFAULTS, "baseline_factor", float)
    failures = ctx.events.filter(_counted_failure()).with_columns(
        _actor().alias(s.ACTOR),
        pl.col(s.EVENT_TIME).dt.truncate("1h").alias(s.WINDOW_START),
    )
    bursts = (
        failures.sort(s.EVENT_TIME, s.EVENT_ID)
        .group_by(s.ACTOR, s.WINDOW_START)
        .agg(
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            pl.col(s.KEY_ARN).drop_nulls().n_unique().alias("_keys"),
            pl.col(s.KEY_ARN).drop_nulls().unique().sort().first().alias("_a_key"),
            pl.col(s.ERROR_CODE).mode().sort().first().alias("_top_error"),
            pl.col(s.EVENT_ID).alias(s.EVIDENCE_EVENT_IDS),
            pl.col(s.PRINCIPAL_ACCOUNT_ID).drop_nulls().first().alias(s.ACCOUNT_ID),
            pl.col(s.AWS_REGION).drop_nulls().unique().sort().str.join(", ").alias(s.AWS_REGION),
            pl.col(s.INVOKED_BY).drop_nulls().first(),
        )
        .filter(pl.col(s.EVIDENCE_COUNT) >= min_failures)
    )
    if bursts.is_empty():
        return empty_findings()
    usual = _usual_hourly_failures(ctx, bursts.get_column(s.ACTOR).unique())
    bursts = bursts.join(usual, on=s.ACTOR, how="left").with_columns(
        pl.col("_p99").fill_null(0.0).cast(pl.Float64),
        pl.col("_failing_hours").fill_null(0),
    )
    many_keys = pl.col("_keys") >= min_keys
    above_baseline = pl.col(s.EVIDENCE_COUNT) > factor * pl.col("_p99")
    fired = bursts.filter(many_keys | above_baseline)
    usual_text = (
        pl.when(pl.col("_failing_hours") == 0)
        .then(pl.format("no such failures in the previous {} days", pl.lit(ctx.history_days)))
        .otherwise(
            pl.format(
                "usually at most {} an hour (p99 of {} failing hours in {} days)",
                pl.col("_p99").round(0).cast(pl.Int64),
                pl.col("_failing_hours"),
                pl.lit(ctx.history_days),
            )
        )
    )
    reason = pl.format(
        "{} had {} failed decrypt-family calls across {} key(s) {}, mostly {} ({}).",
        shown(pl.col(s.ACTOR)),
        pl.col(s.EVIDENCE_COUNT),
        pl.col("_keys"),
        hour_text(pl.col(s.WINDOW_START)),
        shown(pl.col("_top_error")),
        usual_text,
    )
    return fired.sort(s.WINDOW_START, s.ACTOR).select(
        pl.when(pl.col("_keys") == 1).then(pl.col("_a_key")).alias(s.KEY_ARN),
        pl.col(s.ACTOR),
        pl.col(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col(s.INVOKED_BY),
        pl.col(s.WINDOW_START),
        pl.col(s.WINDOW_START).dt.offset_by("1h").alias(s.WINDOW_END),
        reason.alias(s.REASON),
        usual_text.alias(s.BASELINE),
        pl.lit("FAILURES").alias(s.OBSERVED_PATTERN),
        pl.col(s.EVIDENCE_EVENT_IDS),
        pl.col(s.EVIDENCE_COUNT),
        (pl.col(s.EVIDENCE_COUNT) / pl.max_horizontal(pl.col("_p99"), pl.lit(1.0))).alias(s.SCORE),
        pl.lit("high").alias(s.SEVERITY),
    )


DETECTOR = RuleDetector(
    id="KMS.FailedDecryptBurst",
    title="Burst of failed KMS decrypt calls by one principal",
    severity="high",
    mitre_attack=("T1580", "T1552"),
    description=(
        "One principal had many refused Decrypt/ReEncrypt/GenerateDataKey calls within an "
        "hour, across many keys or far above its own usual failure rate. That is the trace of "
        "someone trying stolen ciphertexts against every key they can name, or of a "
        "compromised workload probing what it may decrypt. DryRun and throttling errors are "
        "not counted."
    ),
    runbook=(
        "1. Read the evidence events: which keys, which error codes (AccessDenied = probing "
        "permissions; IncorrectKey/InvalidCiphertext = trying ciphertexts), source IPs and "
        "user agents.\n"
        "2. Ask the actor's owner whether a deployment, key disablement or policy change "
        "explains it (look for KMS.KeyPolicyChanged or KMS.KeyDisabledOrScheduledForDeletion "
        "on the same keys).\n"
        "3. If unexplained, revoke the actor's active sessions (for a role, an "
        "aws:TokenIssueTime deny policy) and rotate its access keys.\n"
        "4. Find where the ciphertexts came from: the encryption contexts name the S3 objects, "
        "secrets or parameters being opened.\n"
        "5. Check whether any decrypt by the same actor succeeded in the same window."
    ),
    detect=detect,
    defaults=DEFAULTS,
    history=(HOURLY_FAILURES,),
    history_days_needed=MIN_WINDOW_DAYS,  # its per-actor failure baseline
)
