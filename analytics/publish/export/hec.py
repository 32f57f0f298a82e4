"""Splunk HTTP Event Collector payloads: OCSF findings wrapped in HEC event envelopes.

HEC takes concatenated JSON objects, each with the payload in ``event`` (reference §4.3). The
OCSF finding goes there unchanged — Splunk's OCSF add-ons read it as is — with ``time`` in epoch
seconds (HEC's unit; OCSF's is milliseconds), ``sourcetype`` naming the format, and the alert ID,
detector and severity as index-time ``fields`` so searches can de-duplicate and filter without
parsing the event. Batches are bounded by count and by bytes, below HEC's default 1,000,000-byte
``max_content_length``.

Delivery is confirmed by indexer acknowledgement: every request carries one channel (a UUID per
export run) in ``X-Splunk-Request-Channel``; the collector answers each accepted request with an
``ackId``, and ``POST /services/collector/ack`` with ``{"acks": [ids]}`` on the same channel says
which of them are indexed. Without acknowledgement, Splunk documents a 200 as "the request looked
valid", not as "indexed" — so a 200 counts as delivered only when the operator turned acks off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

SOURCETYPE = "ocsf:detection_finding"
SOURCE = "keytrail"
MAX_BATCH_EVENTS = 100
MAX_BATCH_BYTES = 800_000
"""Default bytes of one request body: below Splunk's default ``max_content_length`` (1,000,000)
with room for headers and a collector configured a little lower."""
EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
CHANNEL_HEADER = "X-Splunk-Request-Channel"
ACK_TIMEOUT_SECONDS = 120.0
"""How long an export waits, in total, for the indexer to acknowledge what it sent."""
ACK_FIRST_POLL_SECONDS = 0.5
ACK_MAX_POLL_SECONDS = 10.0
"""Pause between acknowledgement polls: doubling from the first to the largest."""
T = TypeVar("T")


def envelope(
    finding: Mapping[str, Any],
    *,
    index: str | None = None,
    host: str | None = None,
    source: str = SOURCE,
    sourcetype: str = SOURCETYPE,
) -> dict[str, Any]:
    """One HEC event around one OCSF finding."""
    info = finding.get("finding_info") or {}
    keytrail = (finding.get("unmapped") or {}).get("keytrail") or {}
    incident = (finding.get("metadata") or {}).get("correlation_uid")
    event: dict[str, Any] = {
        "time": round(int(finding["time"]) / 1000, 3),
        "source": source,
        "sourcetype": sourcetype,
        "event": finding,
        "fields": {
            "alert_id": info.get("uid"),
            "detector": keytrail.get("detector"),
            "severity": finding.get("severity"),
            "incident_id": incident,
        },
    }
    if index:
        event["index"] = index
    if host:
        event["host"] = host
    return event


def encode(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def batches(
    items: Iterable[T],
    size: Callable[[T], int],
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[T]]:
    """Split items into batches of at most ``max_events`` and about ``max_bytes`` by ``size``
    (an item larger than that still goes, alone; a collector that refuses it with 413 makes the
    sink split further)."""
    out: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        length = size(item) + 1
        if current and (len(current) >= max_events or total + length > max_bytes):
            out.append(current)
            current, total = [], 0
        current.append(item)
        total += length
    if current:
        out.append(current)
    return out


def body(batch: Iterable[Mapping[str, Any]]) -> bytes:
    """A batch as HEC's body: the JSON objects one after another, newline-separated."""
    return b"\n".join(encode(event) for event in batch)


def ack_delays(total: float) -> list[float]:
    """The pauses between acknowledgement polls: doubling from :data:`ACK_FIRST_POLL_SECONDS`,
    capped at :data:`ACK_MAX_POLL_SECONDS`, the last one cut so they add up to ``total``."""
    delays: list[float] = []
    left, step = max(total, 0.0), ACK_FIRST_POLL_SECONDS
    while left > 0:
        delays.append(min(step, left))
        left -= delays[-1]
        step = min(step * 2, ACK_MAX_POLL_SECONDS)
    return delays


def ack_body(ack_ids: Iterable[int]) -> bytes:
    return orjson.dumps({"acks": sorted(ack_ids)})


def acknowledged(answer: Any) -> set[int]:
    """The ack IDs an ``/ack`` answer (``{"acks": {"0": true, "1": false}}``) says are indexed;
    anything malformed acknowledges nothing."""
    acks = answer.get("acks") if isinstance(answer, dict) else None
    if not isinstance(acks, dict):
        return set()
    done = set()
    for key, value in acks.items():
        try:
            ack_id = int(key)
        except (TypeError, ValueError):
            continue
        if value is True:
            done.add(ack_id)
    return done


def ack_url(collector: str) -> str:
    """The acknowledgement endpoint beside a collector URL (same scheme, host and prefix)."""
    parts = urlsplit(collector)
    path = parts.path
    prefix = path.split("/services/collector", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, prefix + ACK_PATH, "", ""))


def collector_url(base: str) -> str:
    """``https://splunk:8088`` → ``https://splunk:8088/services/collector/event``; a URL that
    already names a collector path is kept. Only http and https are accepted."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{base!r} is not an http(s) URL of a Splunk HEC endpoint")
    path = parts.path.rstrip("/")
    if "/services/collector" not in path:
        path = path + EVENT_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
