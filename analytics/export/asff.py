"""Alerts in the AWS Security Finding Format, for Security Hub's ``BatchImportFindings``.

ASFF is what Security Hub CSPM's import API takes (reference §4.2). A finding must be imported by
the account that owns it, so ``AwsAccountId`` and the product ARN are the *importing* account's
(``product/<account>/default``, the custom-integration product every account has); the account
that owns the key goes into the resource and ``ProductFields``. ``Id`` is the alert's
``alert_id``: re-importing the same alert updates the finding instead of adding another.

Times come from the alert's window, not the clock, so an export is reproducible; text fields are
clipped to the API's limits (Title 256, Description 1024 characters) because one oversized
field fails the whole finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from analytics import schema as s

SCHEMA_VERSION = "2018-10-08"
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_PRODUCT_FIELD = 2048
MAX_RECOMMENDATION = 512

_LABELS = {"info": "INFORMATIONAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
           "critical": "CRITICAL"}  # fmt: skip
_NORMALIZED = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 40, "HIGH": 70, "CRITICAL": 90}
_TYPES = {
    "UNSEEN": "Unusual Behaviors/User",
    "RARE": "Unusual Behaviors/User",
    "SURGE": "Unusual Behaviors/Data",
    "OFF_HOURS": "Unusual Behaviors/User",
    "FAILURES": "TTPs/Discovery",
    "CHANGE": "Software and Configuration Checks/AWS Security Best Practices",
    "EXPOSURE": "Effects/Data Exposure",
    "BLIND_SPOT": "TTPs/Defense Evasion",
}


def product_arn(account_id: str, region: str) -> str:
    partition = "aws-cn" if region.startswith("cn-") else (
        "aws-us-gov" if region.startswith("us-gov-") else "aws"
    )  # fmt: skip
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def _clip(text: Any, limit: int) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finding(alert: Mapping[str, Any], *, account_id: str, region: str) -> dict[str, Any]:
    """One alert row → one ASFF finding imported by ``account_id`` in ``region``."""
    label = _LABELS.get(str(alert.get(s.SEVERITY)), "INFORMATIONAL")
    created = _iso(alert.get(s.WINDOW_END)) or _iso(alert.get(s.WINDOW_START))
    key = alert.get(s.KEY_ARN)
    key_account = alert.get(s.ACCOUNT_ID)
    key_region = alert.get(s.AWS_REGION) or region
    partition = "aws-cn" if key_region.startswith("cn-") else (
        "aws-us-gov" if key_region.startswith("us-gov-") else "aws"
    )  # fmt: skip
    if key:
        resource = {"Type": "AwsKmsKey", "Id": key, "Partition": partition, "Region": key_region}
    else:
        resource = {
            "Type": "AwsAccount",
            "Id": f"AWS::::Account:{key_account or account_id}",
            "Partition": partition,
            "Region": key_region,
        }
    finding_type = _TYPES.get(str(alert.get(s.OBSERVED_PATTERN)), "Unusual Behaviors/User")
    fields = {
        "keytrail/detector": alert.get(s.DETECTOR),
        "keytrail/alert_id": alert.get(s.ALERT_ID),
        "keytrail/actor": alert.get(s.ACTOR),
        "keytrail/invoked_by": alert.get(s.INVOKED_BY),
        "keytrail/key_account_id": key_account,
        "keytrail/observed_pattern": alert.get(s.OBSERVED_PATTERN),
        "keytrail/baseline": alert.get(s.BASELINE),
        "keytrail/score": None if alert.get(s.SCORE) is None else f"{alert[s.SCORE]:.4f}",
        "keytrail/mitre_attack": ",".join(alert.get(s.MITRE) or []) or None,
        "keytrail/evidence_count": str(alert.get(s.EVIDENCE_COUNT)),
        "keytrail/evidence_event_ids": ",".join((alert.get(s.EVIDENCE_EVENT_IDS) or [])[:20]),
    }
    product_fields = {k: _clip(v, MAX_PRODUCT_FIELD) for k, v in fields.items() if v}
    result: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": alert.get(s.ALERT_ID),
        "ProductArn": product_arn(account_id, region),
        "GeneratorId": f"keytrail/{alert.get(s.DETECTOR)}",
        "AwsAccountId": account_id,
        "Types": [finding_type],
        "FirstObservedAt": _iso(alert.get(s.WINDOW_START)),
        "LastObservedAt": _iso(alert.get(s.WINDOW_END)),
        "CreatedAt": created,
        "UpdatedAt": created,
        "Severity": {
            "Label": label,
            "Normalized": _NORMALIZED[label],
            "Original": str(alert.get(s.SEVERITY)),
        },
        "Title": _clip(alert.get(s.TITLE), MAX_TITLE),
        "Description": _clip(alert.get(s.REASON), MAX_DESCRIPTION),
        "Resources": [resource],
        "ProductFields": product_fields,
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
        "FindingProviderFields": {"Severity": {"Label": label}, "Types": [finding_type]},
    }
    if alert.get(s.RUNBOOK):
        result["Remediation"] = {
            "Recommendation": {"Text": _clip(alert[s.RUNBOOK], MAX_RECOMMENDATION)}
        }
    return {k: v for k, v in result.items() if v is not None}
