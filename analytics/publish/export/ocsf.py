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
  user agent, key) and ``finding_info.related_events``; the values SIEMs pivot on (actor, key
  ARN, accounts, source IPs, user agents) are also ``observables``, typed with OCSF's own
  ``type_id``s, and every user that has a ``type`` has its ``type_id``;
* an alert that belongs to an incident names it in ``metadata.correlation_uid``;
* what OCSF has no place for (score, runbook, feature contributions) goes under ``unmapped``;
* every string is clipped to the limit of its kind of field and the whole finding serialises to
  under 64 KiB (:mod:`analytics.publish.export.bounds`): one stuffed user agent cannot make a
  finding a SIEM refuses. At most :data:`~analytics.publish.export.bounds.MAX_RELATED_EVENTS`
  evidence event IDs are listed; ``related_events_count`` keeps the full count.

The tests validate every line the exports write against the OCSF 1.5.0 JSON schema
(tests/publish/ocsf_schema.py). Each day's incidents go to the same sinks as OCSF Incident
Findings (class 2005, :func:`incident_finding`) linking these findings by their uids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from analytics.lake import schema as s
from analytics.publish.export import bounds as b

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

INCIDENT_CLASS_UID = 2005
INCIDENT_CLASS_NAME = "Incident Finding"
ACTIVITY_UPDATE = 2

OBSERVABLE_TYPES: dict[str, tuple[int, str]] = {
    "ip": (2, "IP Address"),
    "resource_uid": (10, "Resource UID"),
    "user_agent": (16, "HTTP User-Agent"),
    "user_uid": (31, "User Object: uid"),
    "account_uid": (35, "Account Object: uid"),
}
"""OCSF 1.5.0 ``observable.type_id`` values (objects/observable.json of the 1.5.0 export) for
what SIEMs pivot on: source IPs, the key ARN, user agents, the actor, accounts."""

USER_TYPES: dict[str, tuple[int, str]] = {
    "IAMUser": (1, "User"),
    "Root": (2, "Admin"),
    "AWSService": (3, "System"),
}
"""CloudTrail ``userIdentity.type`` → OCSF ``user.type_id``; any other type (AssumedRole,
FederatedUser, AWSAccount, IdentityCenterUser, …) is 99 Other with its own name kept."""

REQUIRED_FIELDS: tuple[str, ...] = (
    "activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
    "metadata.product", "metadata.version", "finding_info.uid", "finding_info.title",
)  # fmt: skip
"""Fields class 2004 requires (``finding_info.title`` is recommended by OCSF; keytrail always
sets it, and downstream consoles need it to show anything useful): what a finding keeps if
nothing else fits."""

UNASSIGNED = {"name": PRODUCT_NAME, "desc": "not assigned yet: triage it in your SIEM"}
"""OCSF 1.5.0 asks an Incident Finding for an assignee or an assignee group; keytrail assigns
nobody, so the group is its own queue, said in words."""

INCIDENT_ESSENTIAL: tuple[str, ...] = (
    "activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id", "status_id",
    "metadata.product", "metadata.version", "metadata.uid", "metadata.correlation_uid",
    "finding_info_list", "message", "cloud", "assignee_group",
)  # fmt: skip
"""What an Incident Finding keeps if nothing else fits: its identity and its links."""

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


def alert_keys(alert: Mapping[str, Any]) -> list[str]:
    """The alert's key, or the keys of a sweep across several (most used first); [] if none."""
    key = alert.get(s.KEY_ARN)
    return [key] if key else list(alert.get(s.RELATED_KEY_ARNS) or [])


def _key_resources(alert: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    keys = alert_keys(alert)
    if not keys:
        return None
    region = alert.get(s.AWS_REGION)
    return [
        {
            "uid": key,
            "name": str(key).rsplit("/", 1)[-1],
            "type": "AWS::KMS::Key",
            "region": region,
            "cloud_partition": _partition(region),
            "owner": {"account": _account(alert.get(s.ACCOUNT_ID))},
        }
        for key in keys[: b.MAX_LIST_ITEMS]
    ]


def _evidence(event: Mapping[str, Any]) -> dict[str, Any]:
    """One CloudTrail event as an OCSF evidence artifact."""
    source_ip = _ip(event.get(s.SOURCE_IP))
    source_service = event.get(s.SOURCE_SERVICE)
    if source_ip is None and event.get(s.SOURCE_IP):  # not an address: keep it, by name
        source_service = source_service or str(event.get(s.SOURCE_IP))
    key = event.get(s.KEY_ARN)
    return {
        "uid": event.get(s.EVENT_ID),
        "name": event.get(s.EVENT_NAME),
        "actor": {
            "user": {
                "uid": event.get(s.PRINCIPAL_ARN) or event.get(s.ACTOR),
                **_user_type(event.get(s.PRINCIPAL_TYPE)),
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


def _ip(value: Any) -> str | None:
    """``value`` if it is an IPv4 or IPv6 address (OCSF's ``ip`` accepts nothing else), else
    None: the field is attacker-controlled and CloudTrail puts service names there too."""
    try:
        return str(ipaddress.ip_address(str(value).strip())) if value else None
    except ValueError:
        return None


def _user_type(principal_type: str | None) -> dict[str, Any]:
    """``type`` and ``type_id`` of an OCSF user from CloudTrail's identity type."""
    if not principal_type:
        return {}
    type_id, name = USER_TYPES.get(principal_type, (99, principal_type))
    return {"type": name if type_id != 99 else principal_type, "type_id": type_id}


def observables(
    alert: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The values a SIEM pivots on, each once, named by where the finding holds them: the
    actor, the key ARN, the accounts, and the evidence events' source IPs and user agents."""
    found: list[tuple[str, str, Any]] = [
        ("user_uid", "evidences.actor.user.uid", alert.get(s.ACTOR)),
        ("resource_uid", "resources.uid", alert.get(s.KEY_ARN)),
        ("account_uid", "cloud.account.uid", alert.get(s.ACCOUNT_ID)),
    ]
    found += [("resource_uid", "resources.uid", k) for k in alert.get(s.RELATED_KEY_ARNS) or []]
    for event in events[: b.MAX_EVIDENCE_EVENTS]:
        found += [
            ("user_uid", "evidences.actor.user.uid", event.get(s.PRINCIPAL_ARN)),
            ("account_uid", "evidences.actor.user.account.uid", event.get(s.PRINCIPAL_ACCOUNT_ID)),
            ("ip", "evidences.src_endpoint.ip", _ip(event.get(s.SOURCE_IP))),
            ("user_agent", "evidences.http_request.user_agent", event.get(s.USER_AGENT)),
        ]
    seen: set[tuple[int, str]] = set()
    out = []
    for kind, name, value in found:
        type_id, type_name = OBSERVABLE_TYPES[kind]
        if not value or (type_id, str(value)) in seen:
            continue
        seen.add((type_id, str(value)))
        out.append({"name": name, "type": type_name, "type_id": type_id, "value": str(value)})
    return out[: b.MAX_LIST_ITEMS]


def _alert_evidence(alert: Mapping[str, Any]) -> dict[str, Any]:
    """When the events are not at hand: the actor and key the alert names."""
    return {
        "actor": {"user": {"uid": alert.get(s.ACTOR)}, "invoked_by": alert.get(s.INVOKED_BY)},
        "resources": _key_resources(alert),
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
            "correlation_uid": alert.get(s.INCIDENT_ID),
            "profiles": ["cloud"],
        },
        "observables": observables(alert, events),
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
        "resources": _key_resources(alert),
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
                "incident_id": alert.get(s.INCIDENT_ID),
                "top_features": [dict(f) for f in alert.get(s.TOP_FEATURES) or []],
            }
        },
    }
    if is_baseline_driven(alert):
        result["anomaly_analyses"] = _anomaly_analyses(alert)
    return b.fit(_compact(result), FIELD_BYTES, (*REQUIRED_FIELDS, "message", "count"))


def incident_version(incident: Mapping[str, Any], finding_uids: Sequence[str]) -> str:
    """What makes one view of an incident differ from another: its alerts and its severity.
    A rerun gives the same version (nothing is sent again); an incident that grew or was
    raised gives a new one (sent again, as an update)."""
    text = "\n".join([str(incident.get(s.SEVERITY)), *sorted(finding_uids)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def incident_finding(
    incident: Mapping[str, Any],
    finding_uids: Sequence[str],
    titles: Mapping[str, str],
    *,
    product_version: str,
) -> dict[str, Any]:
    """One incident row (the incident schema, as a dict) → an OCSF 1.5 Incident Finding
    (class 2005) linking the Detection Findings of its exported alerts by their uids.

    ``metadata.correlation_uid`` is the ``incident_id`` (as on each linked Detection Finding);
    ``metadata.uid`` is ``incident_id:version`` (:func:`incident_version`). The first day of
    an incident is reported as Create, its fuller view on a later day as Update."""
    severity = incident.get(s.SEVERITY)
    sev_id = severity_id(severity)
    first, last = millis(incident.get(s.FIRST_SEEN)), millis(incident.get(s.LAST_SEEN))
    incident_id = incident.get(s.INCIDENT_ID)
    version = incident_version(incident, finding_uids)
    first_seen = incident.get(s.FIRST_SEEN)
    first_day = first_seen.date() if isinstance(first_seen, dt.datetime) else None
    activity = (
        ACTIVITY_CREATE if first_day in (None, incident.get(s.EVENT_DATE)) else ACTIVITY_UPDATE
    )
    accounts = list(incident.get(s.ACCOUNT_IDS) or [])
    activity_name = "Create" if activity == ACTIVITY_CREATE else "Update"
    owner = _account(accounts[0] if len(accounts) == 1 else None)
    result: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": activity_name,
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": INCIDENT_CLASS_UID,
        "class_name": INCIDENT_CLASS_NAME,
        "type_uid": INCIDENT_CLASS_UID * 100 + activity,
        "type_name": f"{INCIDENT_CLASS_NAME}: {activity_name}",
        "time": last,
        "start_time": first,
        "end_time": last,
        "count": len(finding_uids),
        "severity_id": sev_id,
        "severity": _SEVERITY_NAMES[sev_id - 1] if sev_id else "Unknown",
        "status_id": STATUS_NEW,
        "status": "New",
        "message": incident.get(s.SUMMARY),
        "desc": incident.get(s.SUMMARY),
        "assignee_group": UNASSIGNED,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": f"{incident_id}:{version}",
            "correlation_uid": incident_id,
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": PRODUCT_NAME,
                "uid": PRODUCT_NAME,
                "version": product_version,
            },
            "log_name": "keytrail-incidents",
            "profiles": ["cloud"],
        },
        "cloud": {"provider": "AWS", "account": owner},
        "finding_info_list": [
            {"uid": uid, "title": titles.get(uid) or UNTITLED} for uid in finding_uids
        ],
        "attacks": [{"technique": {"uid": t}} for t in incident.get(s.TECHNIQUES) or []],
        "observables": [
            *(
                {
                    "name": "unmapped.keytrail.actors",
                    "type": OBSERVABLE_TYPES["user_uid"][1],
                    "type_id": OBSERVABLE_TYPES["user_uid"][0],
                    "value": a,
                }
                for a in incident.get(s.ACTORS) or []
            ),
            *(
                {
                    "name": "unmapped.keytrail.key_arns",
                    "type": OBSERVABLE_TYPES["resource_uid"][1],
                    "type_id": OBSERVABLE_TYPES["resource_uid"][0],
                    "value": k,
                }
                for k in incident.get(s.KEY_ARNS) or []
            ),
            *(
                {
                    "name": "unmapped.keytrail.account_ids",
                    "type": OBSERVABLE_TYPES["account_uid"][1],
                    "type_id": OBSERVABLE_TYPES["account_uid"][0],
                    "value": a,
                }
                for a in accounts
            ),
        ][: b.MAX_LIST_ITEMS],
        "unmapped": {
            "keytrail": {
                "incident_id": incident_id,
                "version": version,
                "title": incident.get(s.TITLE),
                "severity": severity,
                "severity_raised_because": incident.get(s.SEVERITY_RAISED_BECAUSE),
                "event_date": _date_text(incident.get(s.EVENT_DATE)),
                "actors": list(incident.get(s.ACTORS) or []),
                "key_arns": list(incident.get(s.KEY_ARNS) or []),
                "account_ids": accounts,
                "detectors": list(incident.get(s.DETECTORS) or []),
                "links": list(incident.get(s.LINKS) or []),
                "alert_count": incident.get(s.ALERT_COUNT),
            }
        },
    }
    return b.fit(_compact(result), FIELD_BYTES, INCIDENT_ESSENTIAL)


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


def jsonl(findings: Iterable[Mapping[str, Any]]) -> bytes:
    """Findings as JSON Lines, keys sorted: the same findings always give the same bytes."""
    return b"".join(orjson.dumps(f, option=orjson.OPT_SORT_KEYS) + b"\n" for f in findings)
