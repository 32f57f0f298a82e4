"""KMS.NewCrossAccountCaller — an account calls a key of another account for the first time.

Cross-account KMS use is how data shared with partners is read — and how it is read by someone
who should not: a key policy or grant opened to an outside account shows up in the trail as a
caller whose ``userIdentity.accountId`` differs from the key's account. The rule keeps the set
of (key, calling account) pairs seen in the history and reports pairs it has never seen.

Severity follows who is on the far side: **high** when the calling account is outside
``ctx.org_accounts``; **medium** when an inside caller uses a key owned outside the organisation
(our data may be going under someone else's key — e.g. an S3 copy with an outside KMS key);
**low** between two accounts of the organisation. The pair is the entity (not the role), so a
new role of an already-trusted account is left to KMS.NewActorForKey.

With less than ``warmup_days`` (default 7) of history every pair looks new, so the rule stays
silent rather than flood (peer tools' first-seen rules are notorious for this). AWS service
principals are not callers in this sense and are skipped.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    KMS_SOURCE,
    distinct_rows,
    setting,
    shown,
    unseen_today,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector, empty_findings
from analytics.lake import schema as s

DEFAULTS: dict[str, Any] = {"warmup_days": 7}
_PAIR = [s.KEY_ARN, s.PRINCIPAL_ACCOUNT_ID]


def _cross_account_call() -> pl.Expr:
    caller, owner = pl.col(s.PRINCIPAL_ACCOUNT_ID), pl.col(s.KEY_ACCOUNT_ID)
    return (
        (pl.col(s.EVENT_SOURCE) == KMS_SOURCE)
        & pl.col(s.KEY_ARN).is_not_null()
        & caller.is_not_null()
        & owner.is_not_null()
        & (caller != owner)
        & ~pl.col(s.ACTOR).fill_null("").str.starts_with("service:")
    )


CROSS_ACCOUNT_PAIRS = distinct_rows(
    "cross_account_pairs",
    "distinct (key, calling account) pairs of KMS calls from an account other than the key's "
    "owner, refused ones included: the pairs KMS.NewCrossAccountCaller has seen",
    _cross_account_call(),
    _PAIR,
)


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per never-seen (key, calling account) pair: the day's calls, first to last."""
    if ctx.history_days < setting(ctx, DEFAULTS, "warmup_days", int):
        return empty_findings()
    unseen = unseen_today(ctx, _cross_account_call(), CROSS_ACCOUNT_PAIRS, _PAIR)
    if unseen.is_empty():
        return empty_findings()
    org = sorted(ctx.org_accounts)
    new_pairs = (
        unseen.group_by(_PAIR)
        .agg(
            pl.col(s.EVENT_TIME).min().alias(s.WINDOW_START),
            pl.col(s.EVENT_TIME).max().alias(s.WINDOW_END),
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            pl.col(s.ERROR_CODE).is_not_null().sum().alias("_failed"),
            pl.col(s.EVENT_NAME).unique().sort().str.join(", ").alias("_operations"),
            pl.col(s.ACTOR).drop_nulls().unique().sort().alias("_actors"),
            pl.col(s.KEY_ACCOUNT_ID).first(),
            pl.col(s.AWS_REGION).drop_nulls().first(),
            pl.col(s.INVOKED_BY).drop_nulls().first(),
            pl.col(s.EVENT_ID).alias(s.EVIDENCE_EVENT_IDS),
        )
        .with_columns(
            (~pl.col(s.PRINCIPAL_ACCOUNT_ID).is_in(org)).alias("_caller_outside"),
            (~pl.col(s.KEY_ACCOUNT_ID).is_in(org)).alias("_key_outside"),
        )
    )
    caller = pl.format(
        "Account {}{}",
        shown(pl.col(s.PRINCIPAL_ACCOUNT_ID)),
        pl.when(pl.col("_caller_outside"))
        .then(pl.lit(" (outside the organisation)"))
        .otherwise(pl.lit("")),
    )
    owner = pl.format(
        "account {}{}",
        shown(pl.col(s.KEY_ACCOUNT_ID)),
        pl.when(pl.col("_key_outside") & ~pl.col("_caller_outside"))
        .then(pl.lit(" (outside the organisation)"))
        .otherwise(pl.lit("")),
    )
    actors = shown(
        pl.col("_actors").list.head(3).list.join(", ")
        + pl.when(pl.col("_actors").list.len() > 3)
        .then(pl.format(" and {} more", pl.col("_actors").list.len() - 3))
        .otherwise(pl.lit("")),
        limit=600,
    )
    failed = (
        pl.when(pl.col("_failed") > 0)
        .then(pl.format(", {} refused", pl.col("_failed")))
        .otherwise(pl.lit(""))
    )
    reason = pl.format(
        "{} used KMS key {} of {} for the first time in {} days: {} call(s) ({}{}) by {}.",
        caller,
        shown(pl.col(s.KEY_ARN)),
        owner,
        pl.lit(ctx.history_days),
        pl.col(s.EVIDENCE_COUNT),
        shown(pl.col("_operations")),
        failed,
        actors,
    )
    severity = (
        pl.when(pl.col("_caller_outside"))
        .then(pl.lit("high"))
        .when(pl.col("_key_outside"))
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    return new_pairs.sort(s.WINDOW_START, s.KEY_ARN).select(
        pl.col(s.KEY_ARN),
        pl.when(pl.col("_actors").list.len() == 1)
        .then(pl.col("_actors").list.first())
        .alias(s.ACTOR),
        # The organisation's side of the pair: the key owner, unless the key is the outsider.
        pl.when(pl.col("_key_outside") & ~pl.col("_caller_outside"))
        .then(pl.col(s.PRINCIPAL_ACCOUNT_ID))
        .otherwise(pl.col(s.KEY_ACCOUNT_ID))
        .alias(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col(s.INVOKED_BY),
        pl.col(s.WINDOW_START),
        pl.col(s.WINDOW_END),
        reason.alias(s.REASON),
        pl.lit(f"pair never seen in the previous {ctx.history_days} days").alias(s.BASELINE),
        pl.lit("UNSEEN").alias(s.OBSERVED_PATTERN),
        pl.col(s.EVIDENCE_EVENT_IDS),
        pl.col(s.EVIDENCE_COUNT),
        severity.alias(s.SEVERITY),
    )


DETECTOR = RuleDetector(
    id="KMS.NewCrossAccountCaller",
    title="New cross-account caller of a KMS key",
    severity="high",
    mitre_attack=("T1078.004", "T1537"),
    description=(
        "A principal from one account called a KMS key owned by another account, and that "
        "(key, calling account) pair never appeared in the history. High when the caller is "
        "outside the organisation, medium when an inside caller uses a key owned outside it, "
        "low between organisation accounts. Silent during the warm-up (default 7 days of "
        "history) so a new deployment does not flood."
    ),
    runbook=(
        "1. Identify the calling account: partner, vendor, another business unit, or unknown?\n"
        "2. Find what let it in: the key policy statement or grant naming that account "
        "(KMS.KeyPolicyChanged / KMS.GrantToExternalPrincipal findings, `aws kms list-grants`).\n"
        "3. Read the encryption contexts of the evidence events to see which data it opened.\n"
        "4. If unexpected, remove the account from the key policy or revoke the grant, then "
        "rotate secrets or data keys it may have decrypted.\n"
        "5. If expected, record it (suppression with an owner and expiry) so the pair is "
        "known."
    ),
    detect=detect,
    defaults=DEFAULTS,
    history=(CROSS_ACCOUNT_PAIRS,),
    history_days_needed=DEFAULTS["warmup_days"],
)
