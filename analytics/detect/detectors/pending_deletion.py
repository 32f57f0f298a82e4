"""KMS.PendingDeletionKeyUsed — something still tries to use a key that is pending deletion.

This is the KMS developer guide's own recommended alarm: a request refused because "<key ARN>
is pending deletion" means a person or application still depends on a key that will be
destroyed when its waiting period ends, and the deletion should be cancelled while it still
can be. Two signals, reported together per (key, actor, hour):

* any KMS event refused with ``KMSInvalidStateException`` whose message says
  "pending deletion" (the guide's metric filter), and
* any cryptographic call on a key whose latest ``ScheduleKeyDeletion`` (history or today) has
  no later ``CancelKeyDeletion`` (nor the KMS-internal ``DeleteKey`` that ends the window) —
  this catches records whose error message was dropped or worded differently.

Management calls that are allowed on a pending key (DescribeKey, CancelKeyDeletion,
PutKeyPolicy …) are not "use" and do not fire the second signal.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import (
    CONTROL_EVENTS,
    DATA_PLANE_EVENTS,
    KMS_SOURCE,
    from_source,
    history_of,
    hour_text,
    key_account,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector, empty_findings
from analytics.lake import schema as s

SCHEDULE = "ScheduleKeyDeletion"
CANCEL = "CancelKeyDeletion"
DELETED = "DeleteKey"
"""KMS's own event when the waiting period ends and the key is gone: later calls fail with
NotFoundException and are no longer "use of a key pending deletion"."""
INVALID_STATE = "KMSInvalidStateException"

_STATE_COLUMNS = [s.EVENT_ID, s.EVENT_TIME, s.EVENT_SOURCE, s.EVENT_NAME, s.ERROR_CODE,
                  s.KEY_ARN, s.ACTOR]  # fmt: skip


def _refused_as_pending() -> pl.Expr:
    return (pl.col(s.ERROR_CODE) == INVALID_STATE) & pl.col(s.ERROR_MESSAGE).str.to_lowercase(
    ).str.contains("pending deletion", literal=True).fill_null(False)  # fmt: skip


def _deletion_states(ctx: DetectionContext, keys: pl.Series) -> pl.DataFrame:
    """Every successful schedule/cancel/deletion of the keys in ``keys``, oldest first."""
    is_state = from_source(KMS_SOURCE, (SCHEDULE, CANCEL, DELETED)) & succeeded()
    past = (
        history_of(ctx, CONTROL_EVENTS, is_state, _STATE_COLUMNS)
        .filter(pl.col(s.KEY_ARN).is_in(keys.implode()))
        .collect()
    )
    today = ctx.events.filter(is_state, pl.col(s.KEY_ARN).is_in(keys.implode()))
    return (
        pl.concat([past, today.select(_STATE_COLUMNS)], how="vertical_relaxed")
        .select(
            pl.col(s.KEY_ARN),
            pl.col(s.EVENT_TIME).alias("_state_time"),
            pl.col(s.EVENT_NAME).alias("_state"),
            pl.col(s.ACTOR).alias("_scheduled_by"),
        )
        .sort("_state_time")
    )


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per (key, actor, hour): calls refused as pending deletion or made on a pending key."""
    kms = ctx.events.lazy().filter(pl.col(s.EVENT_SOURCE) == KMS_SOURCE)
    is_use = pl.col(s.EVENT_NAME).is_in(DATA_PLANE_EVENTS) & pl.col(s.KEY_ARN).is_not_null()
    used_keys = kms.filter(is_use).select(pl.col(s.KEY_ARN).unique()).collect().to_series()
    states = _deletion_states(ctx, used_keys)
    # Only keys with a deletion on record can be "used while pending": filtering the day's
    # million cryptographic calls down to those keys first keeps this rule's memory small.
    ever_scheduled = states.filter(pl.col("_state") == SCHEDULE).get_column(s.KEY_ARN).unique()
    candidates = kms.filter(
        _refused_as_pending() | (is_use & pl.col(s.KEY_ARN).is_in(ever_scheduled.implode()))
    ).collect()
    if candidates.is_empty():
        return empty_findings()
    candidates = (
        candidates.with_columns(pl.col(s.EVENT_TIME).alias("_use_time"))
        .sort("_use_time")
        .join_asof(
            states,
            left_on="_use_time",
            right_on="_state_time",
            by=s.KEY_ARN,
            strategy="backward",
            check_sortedness=False,  # both sides are sorted on time just above
        )
    )
    pending = _refused_as_pending() | (is_use & (pl.col("_state") == SCHEDULE).fill_null(False))
    hits = candidates.filter(pending).with_columns(
        pl.col(s.EVENT_TIME).dt.truncate("1h").alias(s.WINDOW_START),
        pl.when(pl.col("_state") == SCHEDULE).then(pl.col("_state_time")).alias("_scheduled_at"),
        pl.when(pl.col("_state") == SCHEDULE).then(pl.col("_scheduled_by")).alias("_by"),
    )
    grouped = (
        hits.sort(s.EVENT_TIME, s.EVENT_ID)
        .group_by(s.KEY_ARN, s.ACTOR, s.WINDOW_START)
        .agg(
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            _refused_as_pending().sum().alias("_refused"),
            pl.col(s.EVENT_NAME).unique().sort().str.join(", ").alias("_operations"),
            pl.col(s.EVENT_ID).alias(s.EVIDENCE_EVENT_IDS),
            key_account().first().alias(s.ACCOUNT_ID),
            pl.col(s.AWS_REGION).first(),
            pl.col(s.INVOKED_BY).drop_nulls().first(),
            pl.col("_scheduled_at").drop_nulls().last(),
            pl.col("_by").drop_nulls().last(),
        )
    )
    scheduled = (
        pl.when(pl.col("_scheduled_at").is_not_null())
        .then(
            pl.format(
                " (deletion scheduled by {} at {})",
                shown(pl.col("_by")),
                pl.col("_scheduled_at").dt.strftime("%Y-%m-%d %H:%M UTC"),
            )
        )
        .otherwise(pl.lit(""))
    )
    refused = (
        pl.when(pl.col("_refused") > 0)
        .then(pl.format("; KMS refused {} of them as pending deletion", pl.col("_refused")))
        .otherwise(pl.lit(""))
    )
    reason = pl.format(
        "{} made {} call(s) ({}) to KMS key {} {} while it is pending deletion{}{}: something "
        "still depends on this key, cancel the deletion until it is understood.",
        shown(pl.col(s.ACTOR), "an unidentified principal"),
        pl.col(s.EVIDENCE_COUNT),
        shown(pl.col("_operations")),
        shown(pl.col(s.KEY_ARN), "(key not named in the record)"),
        hour_text(pl.col(s.WINDOW_START)),
        scheduled,
        refused,
    )
    return grouped.sort(s.WINDOW_START, s.KEY_ARN, s.ACTOR, nulls_last=True).select(
        s.KEY_ARN,
        s.ACTOR,
        s.ACCOUNT_ID,
        s.AWS_REGION,
        s.INVOKED_BY,
        s.WINDOW_START,
        pl.col(s.WINDOW_START).dt.offset_by("1h").alias(s.WINDOW_END),
        reason.alias(s.REASON),
        pl.lit("no use is expected of a key pending deletion").alias(s.BASELINE),
        pl.lit("FAILURES").alias(s.OBSERVED_PATTERN),
        s.EVIDENCE_EVENT_IDS,
        s.EVIDENCE_COUNT,
        pl.lit("high").alias(s.SEVERITY),
    )


DETECTOR = RuleDetector(
    id="KMS.PendingDeletionKeyUsed",
    title="KMS key pending deletion is still being used",
    severity="high",
    mitre_attack=("T1485",),
    description=(
        "A principal tried to use a KMS key that is scheduled for deletion: KMS refused the "
        "call with KMSInvalidStateException '... is pending deletion', or a cryptographic call "
        "named a key whose ScheduleKeyDeletion was never cancelled. This is the alarm AWS "
        "recommends before deleting any key: the key is still needed, and once the waiting "
        "period ends the data under it cannot be decrypted."
    ),
    runbook=(
        "1. Cancel the deletion now if the window is close: "
        "`aws kms cancel-key-deletion --key-id <key>` (the key stays disabled; enable it if "
        "the caller must keep working).\n"
        "2. Identify the caller and what it decrypts (encryption context in the evidence "
        "events) and contact its owner.\n"
        "3. Find who scheduled the deletion (KMS.KeyDisabledOrScheduledForDeletion) and whether "
        "it was planned; if not, treat it as destructive activity.\n"
        "4. Before scheduling again, re-encrypt the dependent data under another key and watch "
        "this detector stay quiet for a full cycle of the application."
    ),
    detect=detect,
    history=(CONTROL_EVENTS,),
    history_days_needed=0,
)
