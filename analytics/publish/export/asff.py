"""Alerts in the AWS Security Finding Format, for Security Hub's ``BatchImportFindings``.

ASFF is what Security Hub CSPM's import API takes (reference §4.2). A finding must be imported by
the account that owns it, so ``AwsAccountId`` and the product ARN are the *importing* account's
(``product/<account>/default``, the custom-integration product every account has); the account
that owns the key goes into the resource and ``ProductFields``. ``Id`` is the alert's
``alert_id``: re-importing the same alert updates the finding instead of adding another.

Times come from the alert's window, not the clock, so an export is reproducible; text fields are
clipped to the API's limits in UTF-8 bytes (Title 256, Description 1024, a product field 2048 —
:mod:`analytics.publish.export.bounds`) because one oversized field fails the whole finding, and the
finding as a whole is kept under 64 KiB.

Severity, Types and RelatedFindings go only in ``FindingProviderFields``, as AWS asks of finding
providers: Security Hub copies them to the top level when it first sees a finding and leaves the
top level to analysts (``BatchUpdateFindings``) after that, so a re-import never overwrites what
an analyst set. No deprecated attribute is sent (``Severity.Normalized``, ``Severity.Product``).
The alerts of one incident name each other in ``RelatedFindings`` (at most 10).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from analytics.lake import schema as s
from analytics.publish.export import bounds as b
from analytics.publish.export import ocsf

SCHEMA_VERSION = "2018-10-08"
FIELD_BYTES: dict[str, int] = {
    "Title": b.ASFF_TITLE_BYTES,
    "Description": b.ASFF_DESCRIPTION_BYTES,
    "GeneratorId": b.ASFF_GENERATOR_ID_BYTES,
    "Text": b.ASFF_RECOMMENDATION_BYTES,
}
"""Byte limits of ASFF attributes by name; product fields and the rest get the default."""
ESSENTIAL: tuple[str, ...] = (
    "SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "CreatedAt", "UpdatedAt",
    "Title", "Description", "Resources", "FindingProviderFields.Severity",
    "FindingProviderFields.Types",
)  # fmt: skip
"""The attributes BatchImportFindings requires, with the severity and types a new finding needs:
all a finding keeps if nothing else fits."""
DEPRECATED: tuple[str, ...] = ("Severity.Normalized", "Severity.Product")
"""Attributes botocore's model marks deprecated: never sent."""

_LABELS = {"info": "INFORMATIONAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
           "critical": "CRITICAL"}  # fmt: skip
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
    return b.clip("" if text is None else text, limit)


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finding(
    alert: Mapping[str, Any],
    *,
    account_id: str,
    region: str,
    related: Sequence[str] = (),
) -> dict[str, Any]:
    """One alert row → one ASFF finding imported by ``account_id`` in ``region``; ``related``
    are the IDs of the other alerts of its incident (imported by the same account)."""
    label = _LABELS.get(str(alert.get(s.SEVERITY)), "INFORMATIONAL")
    created = _iso(alert.get(s.WINDOW_END)) or _iso(alert.get(s.WINDOW_START))
    key_account = alert.get(s.ACCOUNT_ID)
    key_region = alert.get(s.AWS_REGION) or region
    partition = "aws-cn" if key_region.startswith("cn-") else (
        "aws-us-gov" if key_region.startswith("us-gov-") else "aws"
    )  # fmt: skip
    keys = ocsf.alert_keys(alert)[: b.ASFF_RESOURCES]
    if keys:  # a sweep across several keys lists each of them
        resources = [{"Type": "AwsKmsKey", "Id": k, "Partition": partition, "Region": key_region}
                     for k in keys]  # fmt: skip
    else:
        resources = [{
            "Type": "AwsAccount",
            "Id": f"AWS::::Account:{key_account or account_id}",
            "Partition": partition,
            "Region": key_region,
        }]  # fmt: skip
    finding_type = _TYPES.get(str(alert.get(s.OBSERVED_PATTERN)), "Unusual Behaviors/User")
    fields = {
        "keytrail/detector": alert.get(s.DETECTOR),
        "keytrail/alert_id": alert.get(s.ALERT_ID),
        "keytrail/actor": alert.get(s.ACTOR),
        "keytrail/incident_id": alert.get(s.INCIDENT_ID),
        "keytrail/invoked_by": alert.get(s.INVOKED_BY),
        "keytrail/key_account_id": key_account,
        "keytrail/observed_pattern": alert.get(s.OBSERVED_PATTERN),
        "keytrail/baseline": alert.get(s.BASELINE),
        "keytrail/score": None if alert.get(s.SCORE) is None else f"{alert[s.SCORE]:.4f}",
        "keytrail/mitre_attack": ",".join(alert.get(s.MITRE) or []) or None,
        "keytrail/evidence_count": str(ocsf.evidence_total(alert)),
        "keytrail/evidence_event_ids": ",".join(
            (alert.get(s.EVIDENCE_EVENT_IDS) or [])[: b.ASFF_RELATED_IDS]
        ),
    }
    product_fields = {
        _clip(k, b.ASFF_PRODUCT_FIELD_KEY_BYTES): _clip(v, b.ASFF_PRODUCT_FIELD_BYTES)
        for k, v in fields.items()
        if v
    }
    result: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": alert.get(s.ALERT_ID),
        "ProductArn": product_arn(account_id, region),
        "GeneratorId": _clip(f"keytrail/{alert.get(s.DETECTOR)}", b.ASFF_GENERATOR_ID_BYTES),
        "AwsAccountId": account_id,
        "FirstObservedAt": _iso(alert.get(s.WINDOW_START)),
        "LastObservedAt": _iso(alert.get(s.WINDOW_END)),
        "CreatedAt": created,
        "UpdatedAt": created,
        "Title": _clip(alert.get(s.TITLE), b.ASFF_TITLE_BYTES),
        "Description": _clip(alert.get(s.REASON), b.ASFF_DESCRIPTION_BYTES),
        "Resources": resources,
        "ProductFields": product_fields,
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
        "FindingProviderFields": {
            "Severity": {
                "Label": label,
                "Original": _clip(alert.get(s.SEVERITY), b.ASFF_SEVERITY_ORIGINAL_BYTES),
            },
            "Types": [finding_type],
            "RelatedFindings": [
                {"ProductArn": product_arn(account_id, region), "Id": other}
                for other in sorted(related)[: b.ASFF_RELATED_FINDINGS]
            ],
        },
    }
    if not related:
        del result["FindingProviderFields"]["RelatedFindings"]
    if alert.get(s.RUNBOOK):
        result["Remediation"] = {
            "Recommendation": {"Text": _clip(alert[s.RUNBOOK], b.ASFF_RECOMMENDATION_BYTES)}
        }
    return b.fit({k: v for k, v in result.items() if v is not None}, FIELD_BYTES, ESSENTIAL)
