"""KMS.KeyDisabledOrScheduledForDeletion — a key was disabled or scheduled for deletion.

Disabling a key stops every decrypt under it at once; deleting it makes the data encrypted
under it unrecoverable. Either is how a destructive insider or a ransomware operator who holds
KMS admin rights hurts an organisation without touching the data itself. Semantics follow
Panther's ``AWS.KMS.CustomerManagedKeyLoss``: a successful ``DisableKey`` or
``ScheduleKeyDeletion`` fires, a failed one (any ``errorCode``) does not, and a missing
``resources`` list does not prevent the alert.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import (
    KMS_SOURCE,
    from_source,
    per_event_findings,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

DISABLE = "DisableKey"
SCHEDULE = "ScheduleKeyDeletion"
DEFAULT_PENDING_DAYS = 30
"""What KMS uses when ``pendingWindowInDays`` is not given (API reference)."""
SHORT_WINDOW_DAYS = 7
"""The shortest window KMS allows: a week to notice before the key is gone."""


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per successful DisableKey / ScheduleKeyDeletion of the day."""
    events = ctx.events.filter(from_source(KMS_SOURCE, (DISABLE, SCHEDULE)), succeeded())
    request = pl.col(s.REQUEST_PARAMETERS)
    response = pl.col(s.RESPONSE_ELEMENTS)
    events = events.with_columns(
        request.str.json_path_match("$.pendingWindowInDays")
        .cast(pl.Int64, strict=False)
        .alias("_pending_days"),
        response.str.json_path_match("$.deletionDate").alias("_deletion_date"),
        response.str.json_path_match("$.keyState").alias("_key_state"),
    )
    who = shown(pl.col(s.ACTOR), "an unidentified principal")
    key = shown(pl.col(s.KEY_ARN), "a key not named in the record")
    days = pl.col("_pending_days")
    window_text = (
        pl.when(days.is_not_null())
        .then(pl.format("in {} days", days))
        .otherwise(pl.lit(f"in {DEFAULT_PENDING_DAYS} days (the default)"))
    )
    date_text = (
        pl.when(pl.col("_deletion_date").is_not_null())
        .then(pl.format(" (deletion date {})", shown(pl.col("_deletion_date"))))
        .when(pl.col("_key_state") == "PendingReplicaDeletion")
        .then(pl.lit(" (multi-Region primary: replicas are deleted first)"))
        .otherwise(pl.lit(""))
    )
    reason = (
        pl.when(pl.col(s.EVENT_NAME) == DISABLE)
        .then(
            pl.format(
                "{} disabled KMS key {}: every encrypt and decrypt with it fails until it is "
                "enabled again.",
                who,
                key,
            )
        )
        .otherwise(
            pl.format(
                "{} scheduled KMS key {} for deletion {}{}; data encrypted under it becomes "
                "unrecoverable unless CancelKeyDeletion is called before then.",
                who,
                key,
                window_text,
                date_text,
            )
        )
    )
    severity = (
        pl.when((pl.col(s.EVENT_NAME) == SCHEDULE) & (days <= SHORT_WINDOW_DAYS))
        .then(pl.lit("critical"))
        .otherwise(pl.lit("high"))
    )
    baseline = (
        pl.when(pl.col(s.EVENT_NAME) == SCHEDULE)
        .then(pl.format("pendingWindowInDays={}", days.cast(pl.String).fill_null("not given")))
        .otherwise(pl.lit(None, pl.String))
    )
    return per_event_findings(
        events, reason=reason, severity=severity, pattern="CHANGE", baseline=baseline
    )


DETECTOR = RuleDetector(
    id="KMS.KeyDisabledOrScheduledForDeletion",
    title="KMS key disabled or scheduled for deletion",
    severity="high",
    mitre_attack=("T1485", "T1490"),
    description=(
        "A principal disabled a KMS key or scheduled it for deletion. Disabling stops all "
        "cryptographic use of the key immediately; once the pending window (7-30 days) ends "
        "the key and everything encrypted only under it is lost for good. Destructive "
        "insiders and ransomware crews use this to deny access to data without touching it. "
        "A window of 7 days or less is critical: there is little time to notice."
    ),
    runbook=(
        "1. Confirm with the key's owner (tags, alias, change ticket) that the change was "
        "planned; if not, treat the actor's credentials as compromised.\n"
        "2. If unplanned, run `aws kms cancel-key-deletion --key-id <key>` and "
        "`aws kms enable-key --key-id <key>` now; cancelling leaves the key disabled.\n"
        "3. Check what still uses the key: search the lake for the key's Decrypt/GenerateDataKey "
        "callers in the last 30 days and for KMS.PendingDeletionKeyUsed alerts.\n"
        "4. Review the actor's other calls in the same session (policy, grant, trail changes) "
        "and revoke its sessions if it is not who it should be.\n"
        "5. Restrict kms:ScheduleKeyDeletion and kms:DisableKey to a break-glass role with an "
        "SCP or the key policy."
    ),
    detect=detect,
    history_days_needed=0,
)
