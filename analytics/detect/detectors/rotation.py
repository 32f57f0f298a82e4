"""KMS.RotationDisabled — automatic rotation of a key was turned off.

Rotation limits how much data one piece of key material protects and is a control auditors
check (CIS, PCI). Turning it off is rarely needed in normal operations — it is mostly done by
mistake or to prepare a key for abuse — and is easy to miss because nothing breaks. Done
outside working hours (07:00–19:00 UTC by default, configurable) it is more likely to be
unreviewed, so the finding is raised to high.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    KMS_SOURCE,
    from_source,
    per_event_findings,
    setting,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

DISABLE_ROTATION = "DisableKeyRotation"
DEFAULTS: dict[str, Any] = {"workday_start_hour": 7, "workday_end_hour": 19}


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per successful DisableKeyRotation; high outside the working hours."""
    start = setting(ctx, DEFAULTS, "workday_start_hour", int)
    end = setting(ctx, DEFAULTS, "workday_end_hour", int)
    events = ctx.events.filter(from_source(KMS_SOURCE, (DISABLE_ROTATION,)), succeeded())
    hour = pl.col(s.EVENT_TIME).dt.hour()
    off_hours = (hour < start) | (hour >= end)
    when = pl.col(s.EVENT_TIME).dt.strftime("%H:%M UTC")
    reason = pl.format(
        "{} turned off automatic rotation of KMS key {} at {}{}; the current key material will "
        "now protect new data indefinitely.",
        shown(pl.col(s.ACTOR), "an unidentified principal"),
        shown(pl.col(s.KEY_ARN), "a key not named in the record"),
        when,
        pl.when(off_hours)
        .then(pl.lit(f", outside working hours ({start:02d}:00–{end:02d}:00 UTC)"))
        .otherwise(pl.lit("")),
    )
    severity = pl.when(off_hours).then(pl.lit("high")).otherwise(pl.lit("medium"))
    return per_event_findings(
        events,
        reason=reason,
        severity=severity,
        pattern="CHANGE",
        baseline=pl.lit(f"working hours {start:02d}:00–{end:02d}:00 UTC"),
    )


DETECTOR = RuleDetector(
    id="KMS.RotationDisabled",
    title="KMS key rotation disabled",
    severity="medium",
    mitre_attack=("T1562",),
    description=(
        "Automatic rotation of a customer managed KMS key was turned off (DisableKeyRotation). "
        "Rotation is a compliance control (CIS AWS Foundations, PCI DSS) and a limit on how "
        "much data one key material protects; disabling it breaks nothing visible, so it goes "
        "unnoticed. Outside 07:00-19:00 UTC the finding is high."
    ),
    runbook=(
        "1. Check whether the key is meant to rotate (the rotation report lists eligibility: "
        "asymmetric, HMAC and imported keys cannot rotate automatically).\n"
        "2. Ask the actor's owner for the change ticket; IaC drift is a common cause.\n"
        "3. If unplanned, re-enable it: `aws kms enable-key-rotation --key-id <key>` "
        "(add `--rotation-period-in-days` if the key used a custom period).\n"
        "4. Look at the actor's other KMS calls that day for policy, grant or deletion changes.\n"
        "5. Add a Config rule or SCP that denies kms:DisableKeyRotation outside the platform role."
    ),
    detect=detect,
    defaults=DEFAULTS,
    history_days_needed=0,
)
