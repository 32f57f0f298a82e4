"""Alerts as OCSF Detection Findings (class 2004, schema 1.5.0): keytrail's primary export.

OCSF is the vendor-neutral format Security Lake, the new Security Hub, Splunk and Elastic read
(reference §4.1), so an alert is mapped to it once, here, and the HEC sink ships the same
object. The mapping:

* the alert's ``alert_id`` is ``finding_info.uid`` (and ``metadata.uid``): reruns produce the same
  finding, so consumers de-duplicate as our sinks do;
* ``time`` is the end of the alert's window, not the wall clock — a finding re-exported tomorrow
  is byte-identical;
* baseline-driven alerts (the isolation forest, ``KMS.UnusualKeyUsage``, and any rule that states
  the baseline it measured against) carry ``anomaly_analyses`` (added to class 2004 in OCSF
  1.5.0): what was observed, by which feature, against which baseline;
* the CloudTrail events that prove the alert become ``evidences`` (actor, API call, source,
  user agent, key) and ``finding_info.related_events``;
* what OCSF has no place for (score, runbook, feature contributions) goes under ``unmapped``;
* every string is clipped to the limit of its kind of field and the whole finding serialises to
  under 64 KiB (:mod:`analytics.export.bounds`): one stuffed user agent cannot make a finding a
  SIEM refuses. At most :data:`~analytics.export.bounds.MAX_RELATED_EVENTS` evidence event IDs
  are listed; ``related_events_count`` keeps the full count.

:func:`missing_required` checks a finding against the fields the class requires; tests run it on
every exported line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from analytics import schema as s
from analytics.export import bounds as b

OCSF_VERSION = "1.5.0"
CLASS_UID = 2004
CLASS_NAME = "Detection Finding"
CATEGORY_UID = 2
CATEGORY_NAME = "Findings"
ACTIVITY_CREATE = 1
TYPE_UID = CLASS_UID * 100 + ACTIVITY_CREATE
STATUS_NEW = 1
PRODUCT_NAME = "keytrail"
BASELINE_DETECTORS = frozenset({"KMS.UnusualKeyUsage"})
UNTITLED = "keytrail alert"  # an alert with neither title nor detector still gets a title
AWS_ACCOUNT_TYPE_ID = 10  # OCSF account.type_id "AWS Account"

REQUIRED_FIELDS: tuple[str, ...] = (
    "activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
    "metadata.product", "metadata.version", "finding_info.uid", "finding_info.title",
)  # fmt: skip
"""Fields class 2004 requires (``finding_info.title`` is recommended by OCSF; keytrail always
sets it, and downstream consoles need it to show anything useful)."""

FIELD_BYTES: dict[str, int] = {
    **dict.fromkeys(("user_agent",), b.USER_AGENT_BYTES),
    **dict.fromkeys(("message", "desc", "value", "baseline", "error_message", "text"),
                    b.TEXT_BYTES),
    **dict.fromkeys(("name", "operation", "error", "type", "event_code", "detector", "severity",
                     "region", "observed_pattern", "observation_parameter", "title"),
                    b.NAME_BYTES),
}  # fmt: skip
"""The byte limit of each OCSF attribute by name; any other string gets the default limit."""

_SEVERITY_NAMES = ("Informational", "Low", "Medium", "High", "Critical")
_OBSERVATION_TYPES = {
    "volume_vs_usual": "Volume Analysis",
    "volume_z": "Volume Analysis",
    "keys_vs_usual": "Volume Analysis",
    "error_ratio_excess": "Error Rate Analysis",
    "off_hours": "Time Pattern Analysis",
}


def severity_id(severity: str | None) -> int:
    """OCSF severity_id: our severities in order map to 1 (Informational) … 5 (Critical)."""
    if severity in s.SEVERITIES:
        return s.SEVERITIES.index(severity) + 1
    return 0


def millis(moment: dt.datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return int(aware.timestamp() * 1000)


def is_baseline_driven(alert: Mapping[str, Any]) -> bool:
    """Alerts measured against a learned or stated baseline get ``anomaly_analyses``."""
    return alert.get(s.DETECTOR) in BASELINE_DETECTORS or bool(alert.get(s.BASELINE))


def _partition(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _account(uid: str | None) -> dict[str, Any] | None:
    if not uid:
        return None
    return {"uid": uid, "type": "AWS Account", "type_id": AWS_ACCOUNT_TYPE_ID}


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty containers, recursively (OCSF omits unknown attributes)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = _compact(item)
        elif isinstance(item, list):
            item = [_compact(i) if isinstance(i, dict) else i for i in item]
        if item is None or item == {} or item == []:
            continue
        out[key] = item
    return out


def _key_resource(alert: Mapping[str, Any]) -> dict[str, Any] | None:
    key = alert.get(s.KEY_ARN)
    if not key:
        return None
    region = alert.get(s.AWS_REGION)
    return {
        "uid": key,
        "name": key.rsplit("/", 1)[-1],
        "type": "AWS::KMS::Key",
        "region": region,
        "cloud_partition": _partition(region),
        "owner": {"account": _account(alert.get(s.ACCOUNT_ID))},
    }


def _evidence(event: Mapping[str, Any]) -> dict[str, Any]:
    """One CloudTrail event as an OCSF evidence artifact."""
    source_ip = event.get(s.SOURCE_IP)
    source_service = event.get(s.SOURCE_SERVICE)
    key = event.get(s.KEY_ARN)
    return {
        "uid": event.get(s.EVENT_ID),
        "name": event.get(s.EVENT_NAME),
        "actor": {
            "user": {
                "uid": event.get(s.PRINCIPAL_ARN) or event.get(s.ACTOR),
                "type": event.get(s.PRINCIPAL_TYPE),
                "account": _account(event.get(s.PRINCIPAL_ACCOUNT_ID)),
            },
            "invoked_by": event.get(s.INVOKED_BY),
        },
        "api": {
            "operation": event.get(s.EVENT_NAME),
            "service": {"name": event.get(s.EVENT_SOURCE)},
            "request": {"uid": event.get(s.REQUEST_ID)} if event.get(s.REQUEST_ID) else None,
            "response": {
                "error": event.get(s.ERROR_CODE),
                "error_message": event.get(s.ERROR_MESSAGE),
            },
        },
        "src_endpoint": {"ip": source_ip} if source_ip else {"svc_name": source_service},
        "http_request": {"user_agent": event.get(s.USER_AGENT)},
        "resources": [{"uid": key, "type": "AWS::KMS::Key"}] if key else None,
    }


def _alert_evidence(alert: Mapping[str, Any]) -> dict[str, Any]:
    """When the events are not at hand: the actor and key the alert names."""
    key = _key_resource(alert)
    return {
        "actor": {"user": {"uid": alert.get(s.ACTOR)}, "invoked_by": alert.get(s.INVOKED_BY)},
        "resources": [key] if key else None,
    }


def _anomaly_analyses(alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    start, end = millis(alert.get(s.WINDOW_START)), millis(alert.get(s.WINDOW_END))
    timespan = {"start_time": start, "end_time": end}
    targets = [
        {"name": value, "type": kind}
        for value, kind in ((alert.get(s.KEY_ARN), "KMS Key"), (alert.get(s.ACTOR), "Principal"))
        if value
    ]
    if not targets:
        targets = [{"name": alert.get(s.ACCOUNT_ID) or "unknown", "type": "AWS Account"}]
    pattern = alert.get(s.OBSERVED_PATTERN)
    features = list(alert.get(s.TOP_FEATURES) or [])
    anomalies: list[dict[str, Any]] = []
    for feature in features:
        name = str(feature.get("name"))
        anomalies.append(
            {
                "observation_parameter": name,
                "observation_type": _OBSERVATION_TYPES.get(
                    name, "Frequency Analysis" if name.startswith("new_") else "Behavior Analysis"
                ),
                "observed_pattern": pattern,
                "observations": [
                    {
                        "value": str(feature.get("text") or feature.get("value")),
                        "timespan": timespan,
                    }
                ],
            }
        )
    if not anomalies:
        anomalies.append(
            {
                "observation_parameter": str(alert.get(s.DETECTOR)),
                "observation_type": "Behavior Analysis",
                "observed_pattern": pattern,
                "observations": [
                    {
                        "value": str(alert.get(s.REASON)),
                        "count": alert.get(s.EVIDENCE_COUNT),
                        "timespan": timespan,
                    }
                ],
            }
        )
    baseline_text = alert.get(s.BASELINE)
    baselines = [
        {
            "observation_parameter": anomaly["observation_parameter"],
            "observation_type": anomaly["observation_type"],
            "observations": [{"value": str(baseline_text)}],
        }
        for anomaly in anomalies
    ] if baseline_text else []  # fmt: skip
    return [{"analysis_targets": targets, "anomalies": anomalies, "baselines": baselines}]


def finding(
    alert: Mapping[str, Any],
    *,
    product_version: str,
    events: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One alert row (the alert schema, as a dict) → an OCSF 1.5 Detection Finding.

    ``events`` are the alert's evidence events (event-schema dicts), when the caller has them.
    """
    severity = alert.get(s.SEVERITY)
    sev_id = severity_id(severity)
    start, end = millis(alert.get(s.WINDOW_START)), millis(alert.get(s.WINDOW_END))
    model = alert.get(s.DETECTOR) in BASELINE_DETECTORS
    key = _key_resource(alert)
    region = alert.get(s.AWS_REGION)
    evidence_ids = list(alert.get(s.EVIDENCE_EVENT_IDS) or [])
    result: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID,
        "class_name": CLASS_NAME,
        "type_uid": TYPE_UID,
        "type_name": f"{CLASS_NAME}: Create",
        "time": end,
        "start_time": start,
        "end_time": end,
        "count": alert.get(s.EVIDENCE_COUNT),
        "severity_id": sev_id,
        "severity": _SEVERITY_NAMES[sev_id - 1] if sev_id else "Unknown",
        "status_id": STATUS_NEW,
        "status": "New",
        "is_alert": True,
        "message": alert.get(s.REASON),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": alert.get(s.ALERT_ID),
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": PRODUCT_NAME,
                "uid": PRODUCT_NAME,
                "version": product_version,
            },
            "log_name": "keytrail-alerts",
            "event_code": alert.get(s.DETECTOR),
            "profiles": ["cloud"],
        },
        "cloud": {
            "provider": "AWS",
            "region": region,
            "account": _account(alert.get(s.ACCOUNT_ID)),
        },
        "finding_info": {
            "uid": alert.get(s.ALERT_ID),
            "title": alert.get(s.TITLE) or alert.get(s.DETECTOR) or UNTITLED,
            "desc": alert.get(s.REASON),
            "types": [alert.get(s.DETECTOR)],
            "analytic": {
                "uid": alert.get(s.DETECTOR),
                "name": alert.get(s.DETECTOR),
                "type_id": 4 if model else 1,
                "type": "Learning (ML/DL)" if model else "Rule",
            },
            "first_seen_time": start,
            "last_seen_time": end,
            "data_sources": ["AWS CloudTrail"],
            "attacks": [{"technique": {"uid": t}} for t in alert.get(s.MITRE) or []],
            "related_events": [
                {"uid": event_id, "type": "AWS CloudTrail event"}
                for event_id in evidence_ids[: b.MAX_RELATED_EVENTS]
            ],
            "related_events_count": evidence_total(alert),
        },
        "resources": [key] if key else None,
        "evidences": [_evidence(e) for e in events[: b.MAX_EVIDENCE_EVENTS]]
        or [_alert_evidence(alert)],
        "remediation": {"desc": alert.get(s.RUNBOOK)} if alert.get(s.RUNBOOK) else None,
        "unmapped": {
            "keytrail": {
                "detector": alert.get(s.DETECTOR),
                "severity": severity,
                "score": alert.get(s.SCORE),
                "observed_pattern": alert.get(s.OBSERVED_PATTERN),
                "baseline": alert.get(s.BASELINE),
                "event_date": _date_text(alert.get(s.EVENT_DATE)),
                "actor": alert.get(s.ACTOR),
                "invoked_by": alert.get(s.INVOKED_BY),
                "top_features": [dict(f) for f in alert.get(s.TOP_FEATURES) or []],
            }
        },
    }
    if is_baseline_driven(alert):
        result["anomaly_analyses"] = _anomaly_analyses(alert)
    return b.fit(_compact(result), FIELD_BYTES, (*REQUIRED_FIELDS, "message", "count"))


def evidence_total(alert: Mapping[str, Any]) -> int | None:
    """The full number of the alert's evidence events, never fewer than the IDs it lists (the
    exports list only the first few)."""
    count = alert.get(s.EVIDENCE_COUNT)
    listed = len(alert.get(s.EVIDENCE_EVENT_IDS) or [])
    if count is None or count < listed:
        return listed or count
    return int(count)


def _date_text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else None


def _lookup(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def missing_required(document: Mapping[str, Any]) -> list[str]:
    """The required fields of class 2004 that ``document`` lacks or gets wrong (empty = valid)."""
    problems = [name for name in REQUIRED_FIELDS if _lookup(document, name) in (None, "", {})]
    if document.get("class_uid") not in (None, CLASS_UID):
        problems.append(f"class_uid is {document.get('class_uid')}, not {CLASS_UID}")
    if document.get("category_uid") not in (None, CATEGORY_UID):
        problems.append(f"category_uid is {document.get('category_uid')}, not {CATEGORY_UID}")
    activity = document.get("activity_id")
    if isinstance(activity, int) and document.get("type_uid") != CLASS_UID * 100 + activity:
        problems.append("type_uid is not class_uid * 100 + activity_id")
    if document.get("severity_id") not in (None, 0, 1, 2, 3, 4, 5, 6, 99):
        problems.append(f"severity_id {document.get('severity_id')} is not an OCSF severity")
    if not isinstance(document.get("time"), int) and document.get("time") is not None:
        problems.append("time is not epoch milliseconds")
    product = _lookup(document, "metadata.product")
    if isinstance(product, Mapping) and not (product.get("name") or product.get("uid")):
        problems.append("metadata.product has neither name nor uid")
    return problems


def jsonl(findings: Iterable[Mapping[str, Any]]) -> bytes:
    """Findings as JSON Lines, keys sorted: the same findings always give the same bytes."""
    return b"".join(orjson.dumps(f, option=orjson.OPT_SORT_KEYS) + b"\n" for f in findings)
