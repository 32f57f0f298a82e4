"""KMS.RootKmsUsage — the root user of an account called KMS.

AWS's own guidance (and CIS 1.7) is that the root user does day-to-day work never; it has no
permission boundary and cannot be limited by IAM, so any KMS call it makes is either break-glass
work someone should know about or stolen root credentials. Every call counts, successful or not
(a refused root call still means someone holds the root password). Findings are grouped per
(account root, hour) so a console session opening ten keys is one alert; any write in the
group makes it critical.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import KMS_SOURCE, READ_EVENTS, hour_text, shown
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

ROOT = "Root"


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per (root actor, hour): the KMS calls the root user made; critical if any wrote."""
    calls = ctx.events.filter(
        (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & (pl.col(s.PRINCIPAL_TYPE) == ROOT)
    ).with_columns(
        pl.col(s.EVENT_TIME).dt.truncate("1h").alias(s.WINDOW_START),
        (~pl.col(s.EVENT_NAME).is_in(sorted(READ_EVENTS))).fill_null(True).alias("_write"),
        pl.coalesce(pl.col(s.PRINCIPAL_ACCOUNT_ID), pl.col(s.RECIPIENT_ACCOUNT_ID)).alias(
            "_root_account"
        ),
    )
    grouped = (
        calls.sort(s.EVENT_TIME, s.EVENT_ID)
        .group_by(s.ACTOR, "_root_account", s.WINDOW_START)
        .agg(
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            pl.col("_write").any().alias("_any_write"),
            pl.col(s.EVENT_NAME).unique().sort().str.join(", ").alias("_operations"),
            pl.col(s.KEY_ARN).drop_nulls().n_unique().alias("_keys"),
            pl.col(s.KEY_ARN).drop_nulls().unique().sort().first().alias("_a_key"),
            pl.col(s.SOURCE_IP).drop_nulls().unique().sort().str.join(", ").alias("_ips"),
            pl.col(s.ERROR_CODE).is_not_null().sum().alias("_failed"),
            pl.col(s.EVENT_ID).alias(s.EVIDENCE_EVENT_IDS),
            pl.col(s.AWS_REGION).drop_nulls().unique().sort().str.join(", "),
            pl.col(s.INVOKED_BY).drop_nulls().first(),
        )
    )
    source = (
        pl.when(pl.col("_ips") != "")
        .then(pl.format(" from {}", shown(pl.col("_ips"))))
        .otherwise(pl.lit(""))
    )
    failed = (
        pl.when(pl.col("_failed") > 0)
        .then(pl.format(", {} refused", pl.col("_failed")))
        .otherwise(pl.lit(""))
    )
    writes = (
        pl.when(pl.col("_any_write"))
        .then(pl.lit(" including calls that change keys"))
        .otherwise(pl.lit(""))
    )
    reason = pl.format(
        "The root user of account {} made {} KMS call(s) ({}) on {} key(s) {}{}{}{}; root "
        "should not be used for day-to-day work.",
        shown(pl.col("_root_account")),
        pl.col(s.EVIDENCE_COUNT),
        shown(pl.col("_operations")),
        pl.col("_keys"),
        hour_text(pl.col(s.WINDOW_START)),
        source,
        failed,
        writes,
    )
    return grouped.sort(s.WINDOW_START, "_root_account").select(
        pl.when(pl.col("_keys") == 1).then(pl.col("_a_key")).alias(s.KEY_ARN),
        pl.col(s.ACTOR),
        pl.col("_root_account").alias(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col(s.INVOKED_BY),
        pl.col(s.WINDOW_START),
        pl.col(s.WINDOW_START).dt.offset_by("1h").alias(s.WINDOW_END),
        reason.alias(s.REASON),
        pl.lit("the root user is expected never to call KMS").alias(s.BASELINE),
        pl.when(pl.col("_any_write"))
        .then(pl.lit("CHANGE"))
        .otherwise(pl.lit("RARE"))
        .alias(s.OBSERVED_PATTERN),
        pl.col(s.EVIDENCE_EVENT_IDS),
        pl.col(s.EVIDENCE_COUNT),
        pl.when(pl.col("_any_write"))
        .then(pl.lit("critical"))
        .otherwise(pl.lit("high"))
        .alias(s.SEVERITY),
    )


DETECTOR = RuleDetector(
    id="KMS.RootKmsUsage",
    title="Root user called KMS",
    severity="high",
    mitre_attack=("T1078.004",),
    description=(
        "The root user of an AWS account made KMS calls. Root cannot be restricted by IAM and "
        "should only be used for the few tasks that require it; KMS work by root is either "
        "undocumented break-glass activity or use of stolen root credentials. Calls that "
        "change keys (anything but reads and cryptographic operations) make it critical."
    ),
    runbook=(
        "1. Contact the holders of the account's root credentials and confirm the session "
        "(time, source IP, MFA device); check for a break-glass ticket.\n"
        "2. If unconfirmed, reset the root password, rotate/remove root access keys and "
        "re-register MFA immediately.\n"
        "3. Review every event of the root session (all services, not just KMS) in the lake.\n"
        "4. Undo key changes made in the session (policies, grants, disable/delete, aliases) "
        "using the evidence events as the list.\n"
        "5. Enforce an SCP that denies root actions in member accounts."
    ),
    detect=detect,
    history_days_needed=0,
)
