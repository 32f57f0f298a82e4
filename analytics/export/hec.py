"""Splunk HTTP Event Collector payloads: OCSF findings wrapped in HEC event envelopes.

HEC takes concatenated JSON objects, each with the payload in ``event`` (reference §4.3). The
OCSF finding goes there unchanged — Splunk's OCSF add-ons read it as is — with ``time`` in epoch
seconds (HEC's unit; OCSF's is milliseconds), ``sourcetype`` naming the format, and the alert ID,
detector and severity as index-time ``fields`` so searches can de-duplicate and filter without
parsing the event. Batches are bounded by count and by bytes, below HEC's default 1 MB
``max_content_length``.
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
EVENT_PATH = "/services/collector/event"
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
    event: dict[str, Any] = {
        "time": round(int(finding["time"]) / 1000, 3),
        "source": source,
        "sourcetype": sourcetype,
        "event": finding,
        "fields": {
            "alert_id": info.get("uid"),
            "detector": keytrail.get("detector"),
            "severity": finding.get("severity"),
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
