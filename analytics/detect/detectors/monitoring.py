"""KMS.KmsMonitoringDisabled — a trail was changed so that KMS use is no longer recorded.

Every other rule here is only as good as the trail feeding it. KMS calls are management events
and the cryptographic ones are *read-only*, so a trail stops recording them when someone

* stops or deletes it (``StopLogging``, ``DeleteTrail``: critical),
* updates it (``UpdateTrail`` can move the bucket, drop regions or global events: high), or
* replaces its event selectors (``PutEventSelectors``) so that no selector still captures KMS
  read events any more: ``includeManagementEvents: false``, ``readWriteType: WriteOnly``,
  ``excludeManagementEventSources`` containing ``kms.amazonaws.com`` — "a per-trail setting that
  excludes all AWS KMS events" (KMS developer guide) that people turn on to save money — or
  advanced selectors with ``eventSource`` NotEquals kms / ``readOnly`` Equals false.

Selectors are a union (an event is logged when *any* selector matches), so the question asked
of a PutEventSelectors is "does any selector still log KMS reads?", not "does some selector
exclude KMS?": a data-events selector with ``includeManagementEvents: false`` next to a normal
management selector blinds nothing. Only successful calls are reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    CLOUDTRAIL_SOURCE,
    KMS_SOURCE,
    clip_text,
    from_source,
    per_event_findings,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

STOP = "StopLogging"
DELETE = "DeleteTrail"
UPDATE = "UpdateTrail"
PUT_SELECTORS = "PutEventSelectors"
TRAIL_EVENTS = (STOP, DELETE, UPDATE, PUT_SELECTORS)


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return bool(value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _basic_gap(selectors: Sequence[Any]) -> str | None:
    """Why no basic event selector logs KMS read events; None if one does."""
    why: list[str] = []
    for selector in selectors:
        if not isinstance(selector, Mapping):
            continue
        included = _truthy(selector.get("includeManagementEvents"), default=True)
        read_write = str(selector.get("readWriteType") or "All")
        excluded = KMS_SOURCE in _strings(selector.get("excludeManagementEventSources"))
        if included and read_write in ("All", "ReadOnly") and not excluded:
            return None
        if not included:
            why.append("includeManagementEvents is false")
        elif excluded:
            why.append("excludeManagementEventSources lists kms.amazonaws.com")
        else:
            why.append(
                f"readWriteType is {read_write}, which drops KMS cryptographic calls "
                "(they are read-only events)"
            )
    if not why:
        return "the trail has no event selector that captures management events"
    return "; ".join(dict.fromkeys(why))


def _field_admits(field: Mapping[str, Any], value: str) -> bool:
    """Does one advanced field selector let ``value`` through?"""
    checks: tuple[tuple[str, Callable[[list[str]], bool]], ...] = (
        ("equals", lambda v: value in v),
        ("notEquals", lambda v: value not in v),
        ("startsWith", lambda v: any(value.startswith(p) for p in v)),
        ("notStartsWith", lambda v: not any(value.startswith(p) for p in v)),
        ("endsWith", lambda v: any(value.endswith(p) for p in v)),
        ("notEndsWith", lambda v: not any(value.endswith(p) for p in v)),
    )
    return all(admits(_strings(field[name])) for name, admits in checks if name in field)


def _advanced_gap(selectors: Sequence[Any]) -> str | None:
    """Why no advanced event selector logs KMS read events; None if one does."""
    why: list[str] = []
    for selector in selectors:
        if not isinstance(selector, Mapping):
            continue
        fields = {
            str(f.get("field")): f
            for f in selector.get("fieldSelectors") or []
            if isinstance(f, Mapping)
        }
        name = clip_text(selector.get("name") or "unnamed", 80)
        category = fields.get("eventCategory")
        if category is None or not _field_admits(category, "Management"):
            why.append(f"selector '{name}' logs no management events")
        elif "eventSource" in fields and not _field_admits(fields["eventSource"], KMS_SOURCE):
            why.append(f"selector '{name}' excludes eventSource kms.amazonaws.com")
        elif "readOnly" in fields and not _field_admits(fields["readOnly"], "true"):
            why.append(f"selector '{name}' keeps only write events (readOnly = false)")
        else:
            return None
    if not why:
        return "the trail has no advanced event selector that captures management events"
    return "; ".join(dict.fromkeys(why))


def selectors_gap(request_parameters: str | None) -> str | None:
    """Why a PutEventSelectors request leaves KMS read events unrecorded; None if it does not
    (or if the request cannot be read — a parse failure is not evidence of blinding)."""
    if request_parameters is None:
        return None
    try:
        request = json.loads(request_parameters)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, Mapping):
        return None
    advanced = request.get("advancedEventSelectors")
    if isinstance(advanced, list) and advanced:
        return _advanced_gap(advanced)
    basic = request.get("eventSelectors")
    if isinstance(basic, list):
        return _basic_gap(basic)
    return None


def update_summary(request_parameters: str | None) -> str:
    """'s3BucketName=x, isMultiRegionTrail=false' for the settings an UpdateTrail changed."""
    try:
        request = json.loads(request_parameters or "{}")
    except (ValueError, RecursionError):
        return "settings not readable"
    if not isinstance(request, Mapping):
        return "settings not readable"
    changed = [
        f"{clip_text(k, 60)}={clip_text(json.dumps(v) if not isinstance(v, str) else v, 120)}"
        for k, v in request.items()
        if k != "name"
    ]
    return ", ".join(changed[:8]) or "no settings given"


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per successful trail stop/delete/update and per blinding selector change."""
    events = ctx.events.filter(from_source(CLOUDTRAIL_SOURCE, TRAIL_EVENTS), succeeded())
    # The helper loop runs only over the day's few trail-configuration events.
    notes = [
        selectors_gap(params)
        if name == PUT_SELECTORS
        else update_summary(params)
        if name == UPDATE
        else ""
        for name, params in events.select(s.EVENT_NAME, s.REQUEST_PARAMETERS).iter_rows()
    ]
    events = events.with_columns(pl.Series("_note", notes, pl.String)).filter(
        pl.col("_note").is_not_null()
    )
    request = pl.col(s.REQUEST_PARAMETERS)
    trail = shown(
        pl.coalesce(request.str.json_path_match("$.name"),
                    request.str.json_path_match("$.trailName")),
        "an unnamed trail",
    )  # fmt: skip
    who = shown(pl.col(s.ACTOR), "an unidentified principal")
    name = pl.col(s.EVENT_NAME)
    reason = (
        pl.when(name == STOP)
        .then(pl.format("{} stopped logging on trail {}: no KMS use is recorded by it.", who,
                        trail))
        .when(name == DELETE)
        .then(pl.format("{} deleted trail {}: no KMS use is recorded by it.", who, trail))
        .when(name == UPDATE)
        .then(pl.format("{} updated trail {} ({}); check it still records KMS events in every "
                        "region.", who, trail, shown(pl.col("_note"), limit=600)))
        .otherwise(pl.format("{} changed the event selectors of trail {} so that KMS "
                             "cryptographic calls are no longer recorded: {}.", who, trail,
                             shown(pl.col("_note"), limit=600)))
    )  # fmt: skip
    severity = (
        pl.when(name.is_in([STOP, DELETE])).then(pl.lit("critical")).otherwise(pl.lit("high"))
    )
    return per_event_findings(
        events,
        reason=reason,
        severity=severity,
        pattern="BLIND_SPOT",
        key_arn=pl.lit(None, pl.String),
        account_id=pl.col(s.RECIPIENT_ACCOUNT_ID),
    )


DETECTOR = RuleDetector(
    id="KMS.KmsMonitoringDisabled",
    title="CloudTrail changed so KMS use is no longer recorded",
    severity="high",
    mitre_attack=("T1562.008",),
    description=(
        "A trail was stopped, deleted or updated, or its event selectors were replaced so that "
        "no selector still records KMS read events (Decrypt, GenerateDataKey and the other "
        "cryptographic calls are read-only management events). Everything keytrail detects "
        "depends on those records; attackers blind the trail first, and cost-saving changes "
        "that exclude kms.amazonaws.com blind it just as well."
    ),
    runbook=(
        "1. Check the trail now: `aws cloudtrail get-trail-status --name <trail>` and "
        "`aws cloudtrail get-event-selectors --trail-name <trail>`.\n"
        "2. If unplanned, restore it: `aws cloudtrail start-logging`, or put back selectors "
        "with includeManagementEvents true, readWriteType All and no KMS exclusion.\n"
        "3. Treat the gap as blind time: review the actor's activity and any other data "
        "source (CloudTrail event history keeps 90 days of management events).\n"
        "4. If the change was a cost decision, record the accepted risk and consider a "
        "separate trail for KMS events only.\n"
        "5. Protect trails with an SCP denying cloudtrail:StopLogging/DeleteTrail/"
        "PutEventSelectors outside the security account."
    ),
    detect=detect,
    history_days_needed=0,
)
