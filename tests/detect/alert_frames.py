"""Hand-made alert frames for the incident tests: a few fields that matter, the rest defaults."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from analytics.lake import schema as s

DAY = dt.date(2026, 11, 13)
ACCOUNT = "111122223333"


def key(name: str) -> str:
    return f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{name}"


def role(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def at(hour: int, day: dt.date = DAY, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(
        hours=hour, minutes=minute
    )


def alert(alert_id: str, detector: str, start: dt.datetime, *, actor: str | None = None,
          key_arn: str | None = None, severity: str = "medium", hours: int = 1,
          mitre: Sequence[str] = (), pattern: str | None = None, reason: str | None = None,
          title: str | None = None, incident_id: str | None = None,
          suppressed_by: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One alert row; its ``event_date`` is the day its window starts."""
    return {
        s.ALERT_ID: alert_id,
        s.DETECTOR: detector,
        s.SEVERITY: severity,
        s.SCORE: None,
        s.EVENT_DATE: start.date(),
        s.WINDOW_START: start,
        s.WINDOW_END: start + dt.timedelta(hours=hours),
        s.ACCOUNT_ID: ACCOUNT,
        s.AWS_REGION: "eu-west-1",
        s.KEY_ARN: key_arn,
        s.ACTOR: actor,
        s.INVOKED_BY: None,
        s.TITLE: title or detector.removeprefix("KMS."),
        s.REASON: reason or f"{detector} by {actor} on {key_arn}",
        s.BASELINE: None,
        s.TOP_FEATURES: [],
        s.OBSERVED_PATTERN: pattern,
        s.MITRE: list(mitre),
        s.RUNBOOK: None,
        s.EVIDENCE_EVENT_IDS: [f"event-{alert_id}"],
        s.EVIDENCE_COUNT: 1,
        s.SUPPRESSED_BY: suppressed_by,
        s.INCIDENT_ID: incident_id,
    }


def frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a frame in the alert schema (empty rows give an empty, typed frame)."""
    table = pa.Table.from_pylist(list(rows), schema=s.ALERT_SCHEMA)
    result = pl.from_arrow(table)
    assert isinstance(result, pl.DataFrame)
    return result
