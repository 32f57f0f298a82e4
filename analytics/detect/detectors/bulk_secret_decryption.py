"""KMS.BulkSecretDecryption — one principal decrypts many secrets or parameters in minutes.

Reading Secrets Manager secrets and SecureString parameters in bulk (``BatchGetSecretValue``,
``GetParametersByPath --recursive --with-decryption``, a loop over ``ListSecrets``) is how
credentials are harvested from a cloud account (ATT&CK T1555.006; Stratus Red Team's
``secretsmanager-batch-retrieve-secrets`` and ``ssm-retrieve-securestring-parameters``). The
services' own events count API calls, not secrets; KMS counts secrets: every secret or
parameter opened is one ``Decrypt`` whose encryption context names it (``SecretARN`` plus
``SecretVersionId``, or ``PARAMETER_ARN``), logged with the caller as ``userIdentity`` and the
service as ``invokedBy``. So the rule counts *distinct* secrets and parameters per actor in a
sliding window (``window_minutes``, default 15): one secret read 200 times is one.

Judgement calls, and why:

* **People fire from day one.** A person (IAM user, Identity Center / SAML user, root, an
  ``AWSReservedSSO_`` role, or a role assumed with an e-mail address as session name) opening
  ``person_min_distinct`` (20) or more secrets in one window fires even with no history at all:
  applications read secrets, people rarely read twenty by hand.
* **Everyone is measured against their own history** once the lake holds ``warmup_days`` (7):
  a window above ``min_distinct`` (10) and more than ``baseline_factor`` (3) × the actor's
  busiest window in the history fires. A service role reading its 20 secrets at every start-up
  has a busiest window of 20 and stays silent; a CI role that reads one token a day and then
  dumps 30 secrets does not. Before the warm-up, workloads are not judged (every start-up
  would look new; KMS.NewActorForKey takes over later).
* **Only successful decrypts count**: a refusal opened nothing (KMS.FailedDecryptBurst watches
  refusals). Decrypts through Secrets Manager or Parameter Store whose context names no secret
  are counted by their distinct contexts.
* **One finding per actor and day**, for its busiest window; the evidence is the first decrypt
  of each secret in that window.

Severity is high for a person at or above the absolute threshold, medium otherwise.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    UTC_US,
    history_of,
    is_person,
    secret_store_decrypt,
    setting,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import (
    DetectionContext,
    HistoryTable,
    RuleDetector,
    empty_findings,
)
from analytics.lake import schema as s

DEFAULTS: dict[str, Any] = {
    "window_minutes": 15,
    "person_min_distinct": 20,
    "min_distinct": 10,
    "baseline_factor": 3.0,
    "warmup_days": 7,
}
NAMES_SHOWN = 3
_ITEM, _KIND = "_item", "_kind"
_SECRET, _PARAMETER, _OTHER = "secret", "parameter", "other"


def _counted() -> pl.Expr:
    return (
        secret_store_decrypt()
        & succeeded()
        & pl.col(s.ACTOR).is_not_null()
        & ~pl.col(s.ACTOR).str.starts_with("service:")
    )


def _with_items(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Each decrypt with the secret or parameter it opened (``_item``) and what that is."""
    context = pl.col(s.ENCRYPTION_CONTEXT)
    secret = context.str.json_path_match("$.SecretARN")
    parameter = context.str.json_path_match("$.PARAMETER_ARN")
    return frame.with_columns(
        pl.coalesce(secret, parameter, context, pl.lit("")).alias(_ITEM),
        pl.when(secret.is_not_null())
        .then(pl.lit(_SECRET))
        .when(parameter.is_not_null())
        .then(pl.lit(_PARAMETER))
        .otherwise(pl.lit(_OTHER))
        .alias(_KIND),
    )


_MINUTE, _FIRST, _LAST, _STORED_ITEM = "minute", "first_time", "last_time", "item"


def _minute_marks(items: pl.LazyFrame) -> pl.LazyFrame:
    """Per (actor, item, minute): the first and last use of the item in that minute.

    Only those uses can start or end a window that holds the item, so the rolling count runs
    over them, not over every call: an application decrypting its five secrets ten thousand
    times a day yields a few thousand rows. A minute lies within one day, so a day's marks are
    final once the day is ingested: they are what the history keeps.
    """
    minute = pl.col(s.EVENT_TIME).dt.truncate("1m")
    return items.group_by(s.ACTOR, _ITEM, minute.alias(_MINUTE)).agg(
        pl.col(s.EVENT_TIME).min().alias(_FIRST), pl.col(s.EVENT_TIME).max().alias(_LAST)
    )


SECRET_DECRYPT_MARKS = HistoryTable(
    name="secret_decrypt_marks",
    description=(
        "per (actor, secret or parameter, minute) the first and last counted decrypt: enough "
        "to find each actor's busiest window of distinct secrets, windows across midnight "
        "included, for KMS.BulkSecretDecryption"
    ),
    build=lambda events: _minute_marks(_with_items(events.filter(_counted()))).select(
        s.ACTOR, pl.col(_ITEM).alias(_STORED_ITEM), _FIRST, _LAST
    ),
)


def _peak_windows(marks: pl.LazyFrame, minutes: int) -> pl.LazyFrame:
    """Per actor, its busiest sliding window over its :func:`_minute_marks`: the end time and
    the distinct items in it."""
    points = (
        marks.select(
            s.ACTOR,
            _ITEM,
            pl.concat_list(_FIRST, _LAST).list.unique().alias(s.EVENT_TIME),
        )
        .explode(s.EVENT_TIME)
        .sort(s.ACTOR, s.EVENT_TIME, _ITEM)
    )
    return (
        points.rolling(index_column=s.EVENT_TIME, period=f"{minutes}m", group_by=s.ACTOR)
        .agg(pl.col(_ITEM).n_unique().cast(pl.Int64).alias("_distinct"))
        .sort(s.ACTOR, pl.col("_distinct"), s.EVENT_TIME, descending=[False, True, False])
        .group_by(s.ACTOR, maintain_order=True)
        .first()
        .rename({s.EVENT_TIME: "_peak_end"})
    )


def _usual_peaks(ctx: DetectionContext, actors: pl.Series, minutes: int) -> pl.DataFrame:
    """Per actor, the most distinct secrets it decrypted in any window of the history."""
    marks = history_of(ctx, SECRET_DECRYPT_MARKS, pl.col(s.ACTOR).is_in(actors.implode())).rename(
        {_STORED_ITEM: _ITEM}
    )
    return (
        _peak_windows(marks, minutes).select(s.ACTOR, pl.col("_distinct").alias("_usual")).collect()
    )


def _names(kind: str) -> pl.Expr:
    """Short names of the distinct items of one kind: the secret or parameter name."""
    name = (
        pl.col(_ITEM)
        .str.replace(r"^arn:[^:]*:secretsmanager:[^:]*:[^:]*:secret:", "")
        .str.replace(r"^arn:[^:]*:ssm:[^:]*:[^:]*:parameter", "")
    )
    return name.filter(pl.col(_KIND) == kind).unique(maintain_order=True)


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per actor: its busiest window of distinct secret/parameter decrypts, when too many."""
    minutes = setting(ctx, DEFAULTS, "window_minutes", int)
    person_min = setting(ctx, DEFAULTS, "person_min_distinct", int)
    floor = setting(ctx, DEFAULTS, "min_distinct", int)
    factor = setting(ctx, DEFAULTS, "baseline_factor", float)
    judged = ctx.history_days >= setting(ctx, DEFAULTS, "warmup_days", int)
    today = _with_items(ctx.events.lazy().filter(_counted())).with_columns(
        is_person(pl.col(s.SESSION_NAME)).alias("_person")
    )
    peaks = (
        _peak_windows(_minute_marks(today), minutes).filter(pl.col("_distinct") >= floor).collect()
    )
    if peaks.is_empty():
        return empty_findings()
    usual = _usual_peaks(ctx, peaks.get_column(s.ACTOR), minutes) if judged else None
    peaks = peaks.join(usual, on=s.ACTOR, how="left") if usual is not None else peaks
    peaks = peaks.with_columns(
        (pl.col("_usual") if usual is not None else pl.lit(None, pl.Int64))
        .fill_null(0)
        .alias("_usual")
    )
    span = pl.duration(minutes=minutes)
    window = (
        today.join(peaks.lazy(), on=s.ACTOR)
        .filter(
            (pl.col(s.EVENT_TIME) > pl.col("_peak_end") - span)
            & (pl.col(s.EVENT_TIME) <= pl.col("_peak_end"))
        )
        .sort(s.EVENT_TIME, s.EVENT_ID)
    )
    found = (
        window.group_by(s.ACTOR)
        .agg(
            pl.col(s.EVENT_TIME).min().alias(s.WINDOW_START),
            pl.col(s.EVENT_TIME).max().alias(s.WINDOW_END),
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            pl.col(s.EVENT_ID)
            .filter(pl.col(_ITEM).is_first_distinct())
            .alias(s.EVIDENCE_EVENT_IDS),
            pl.col(_ITEM).filter(pl.col(_KIND) == _SECRET).n_unique().alias("_secrets"),
            pl.col(_ITEM).filter(pl.col(_KIND) == _PARAMETER).n_unique().alias("_parameters"),
            pl.col(_ITEM).filter(pl.col(_KIND) == _OTHER).n_unique().alias("_others"),
            _names(_SECRET).alias("_secret_names"),
            _names(_PARAMETER).alias("_parameter_names"),
            pl.col(s.INVOKED_BY).fill_null("directly").unique().sort().alias("_services"),
            pl.col(s.KEY_ARN).drop_nulls().unique().sort().alias("_keys"),
            pl.col("_person").any(),
            pl.col("_distinct").first(),
            pl.col("_usual").first(),
            pl.coalesce(s.KEY_ACCOUNT_ID, s.PRINCIPAL_ACCOUNT_ID, s.RECIPIENT_ACCOUNT_ID)
            .drop_nulls()
            .first()
            .alias(s.ACCOUNT_ID),
            pl.col(s.AWS_REGION).drop_nulls().unique().sort().str.join(", "),
        )
        .collect()
    )
    # With history, everyone (people included) must be above their own busiest window; before
    # the warm-up only people are judged, by the absolute threshold.
    if judged:
        fires = pl.col("_distinct") > factor * pl.col("_usual")
    else:
        fires = pl.col("_person") & (pl.col("_distinct") >= person_min)
    fired = found.filter(fires)
    if fired.is_empty():
        return empty_findings()
    return _findings(fired, ctx.history_days, minutes, judged, person_min)


def _listed(names: str, count: str, what: str) -> pl.Expr:
    """'12 secrets (a, b, c and 9 more)', or nothing when there are none."""
    head = (
        pl.col(names)
        .list.head(NAMES_SHOWN)
        .list.eval(pl.element().str.replace_all(r"[\x00-\x1f\x7f]", " ").str.slice(0, 120))
    )
    more = pl.col(names).list.len() - NAMES_SHOWN
    text = pl.format(
        "{} {} ({}{})",
        pl.col(count),
        pl.lit(what),
        head.list.join(", "),
        pl.when(more > 0).then(pl.format(" and {} more", more)).otherwise(pl.lit("")),
    )
    return pl.when(pl.col(count) > 0).then(text)


def _findings(
    fired: pl.DataFrame, history_days: int, minutes: int, judged: bool, person_min: int
) -> pl.DataFrame:
    what = pl.concat_str(
        [
            _listed("_secret_names", "_secrets", "Secrets Manager secret(s)"),
            _listed("_parameter_names", "_parameters", "SSM parameter(s)"),
            pl.when(pl.col("_others") > 0).then(
                pl.format("{} other encryption context(s)", pl.col("_others"))
            ),
        ],
        separator=" and ",
        ignore_nulls=True,
    )
    usual = (
        pl.when(pl.lit(not judged))
        .then(pl.lit(f"only {history_days} day(s) of history: judged as a person's reading"))
        .when(pl.col("_usual") == 0)
        .then(pl.lit(f"no secret or parameter decrypted in the previous {history_days} days"))
        .otherwise(
            pl.format(
                "at most {} distinct in any {}-minute window of the previous {} days",
                pl.col("_usual"),
                pl.lit(minutes),
                pl.lit(history_days),
            )
        )
    )
    high = pl.col("_person") & (pl.col("_distinct") >= person_min)
    took = ((pl.col(s.WINDOW_END) - pl.col(s.WINDOW_START)).dt.total_seconds() // 60 + 1).cast(
        pl.Int64
    )
    reason = pl.format(
        "{}{} decrypted {} distinct secrets and parameters within {} minute(s) ({}–{} UTC, via "
        "{}): {}; {} call(s) in all ({}).",
        shown(pl.col(s.ACTOR)),
        pl.when(pl.col("_person")).then(pl.lit(" (a person)")).otherwise(pl.lit("")),
        pl.col("_distinct"),
        took,
        pl.col(s.WINDOW_START).dt.strftime("%H:%M"),
        pl.col(s.WINDOW_END).dt.strftime("%H:%M"),
        shown(pl.col("_services").list.join(", ")),
        shown(what, limit=900),
        pl.col(s.EVIDENCE_COUNT),
        usual,
    )
    return fired.sort(s.WINDOW_START, s.ACTOR).select(
        pl.when(pl.col("_keys").list.len() == 1)
        .then(pl.col("_keys").list.first())
        .alias(s.KEY_ARN),
        pl.col(s.ACTOR),
        pl.col(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col("_services").list.join(", ").alias(s.INVOKED_BY),
        pl.col(s.WINDOW_START).cast(UTC_US),
        pl.col(s.WINDOW_END).cast(UTC_US),
        reason.alias(s.REASON),
        usual.alias(s.BASELINE),
        pl.lit("SURGE").alias(s.OBSERVED_PATTERN),
        pl.col(s.EVIDENCE_EVENT_IDS),
        pl.col(s.EVIDENCE_COUNT),
        (pl.col("_distinct") / pl.max_horizontal(pl.col("_usual"), pl.lit(1))).alias(s.SCORE),
        pl.when(high).then(pl.lit("high")).otherwise(pl.lit("medium")).alias(s.SEVERITY),
    )


DETECTOR = RuleDetector(
    id="KMS.BulkSecretDecryption",
    title="Bulk decryption of secrets or parameters by one principal",
    severity="high",
    mitre_attack=("T1555.006", "T1552"),
    description=(
        "One principal decrypted many distinct Secrets Manager secrets or SSM SecureString "
        "parameters within minutes, counted from the SecretARN / PARAMETER_ARN encryption "
        "contexts of the KMS Decrypt calls the services make for it. A person (IAM user, "
        "Identity Center or SSO role, e-mail-named session) fires from day one, as high, at "
        "20 in 15 minutes by default; with 7 days of history anyone fires, as medium, when a "
        "window holds at least 10 and more than 3 times the actor's busiest window of the "
        "history, so a service reading its usual secrets at start-up stays silent. One secret "
        "read many times counts once."
    ),
    runbook=(
        "1. Read the reason and evidence: which secrets and parameters, through which service, "
        "from which source IP and user agent (the Secrets Manager / SSM events of the same "
        "minutes show the GetSecretValue, BatchGetSecretValue or GetParameters* calls).\n"
        "2. Ask the actor's owner whether a migration, audit or incident explains it; a person "
        "reading dozens of production secrets by hand almost never has a reason.\n"
        "3. If unexplained, revoke the actor's sessions (an aws:TokenIssueTime deny for a role), "
        "disable its access keys, and look for other alerts of the same actor.\n"
        "4. Rotate every secret and parameter named in the evidence: nothing revokes a value "
        "already read, so rotation is the only containment.\n"
        "5. Narrow who may read them: resource policies on the secrets, kms:EncryptionContext "
        "conditions on the key (not possible on the AWS managed aws/ssm key)."
    ),
    detect=detect,
    defaults=DEFAULTS,
    history=(SECRET_DECRYPT_MARKS,),
    history_days_needed=DEFAULTS["warmup_days"],  # people are judged from day one; others after
)
