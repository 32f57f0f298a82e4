"""Incidents on the terminal: what ``keytrail detect`` shows first, and the one-liners of ``run``.

An analyst triages incidents, so they come before the alert list, each with what it is about
(title, severity, how many alerts) and who and what it touched, in the short names people
recognise (:func:`analytics.incidents.short_arn`). Every value comes from records, so every one
goes through :func:`flows.console.plain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from rich.console import Console

from analytics import schema as s
from analytics.incidents import short_arn
from flows.console import plain

SHOWN_NAMES = 3
"""Actors and keys named per incident; the rest are counted."""
TOP_INCIDENTS = 5
"""Incidents named one line each at the end of ``keytrail run`` and ``keytrail demo``."""


def names(values: Sequence[str] | None, limit: int = SHOWN_NAMES) -> str:
    """Short names of ARNs, the first ``limit`` of them, then how many more (escaped)."""
    items = [short_arn(v) for v in (values or [])]
    if not items:
        return "-"
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return plain(f"{shown} (+{more} more)" if more > 0 else shown)


def labels(incidents: pl.DataFrame) -> dict[str, str]:
    """``incident_id`` → ``I1``, ``I2``, … in the order the incidents are listed."""
    ids = incidents.get_column(s.INCIDENT_ID).to_list() if incidents.height else []
    return {incident_id: f"I{number}" for number, incident_id in enumerate(ids, start=1)}


def print_incidents(out: Console, incidents: pl.DataFrame, verb: str) -> None:
    """Each incident in two lines: label, severity and title; then its alerts, actors, keys and
    time span (and why its severity was raised, when it was)."""
    if incidents.is_empty():
        out.print(f"no incidents: {verb} no group of related alerts", highlight=False)
        return
    label = labels(incidents)
    for row in incidents.iter_rows(named=True):
        out.print(
            f"{label[row[s.INCIDENT_ID]]:4} [bold]{plain(row[s.SEVERITY].upper()):8}[/] "
            f"{plain(row[s.TITLE])}",
            highlight=False,
            soft_wrap=True,
        )
        out.print(
            f"     {row[s.ALERT_COUNT]} alerts, {row[s.FIRST_SEEN]:%Y-%m-%d %H:%M} → "
            f"{row[s.LAST_SEEN]:%Y-%m-%d %H:%M} UTC · actors: {names(row[s.ACTORS])} · "
            f"keys: {names(row[s.KEY_ARNS])} · incident {plain(row[s.INCIDENT_ID][:12])}",
            highlight=False,
            soft_wrap=True,
        )
        if row[s.SEVERITY_RAISED_BECAUSE]:
            out.print(
                f"     severity raised: {plain(row[s.SEVERITY_RAISED_BECAUSE])}",
                highlight=False,
                soft_wrap=True,
            )


def one_line(incident: dict[str, Any]) -> str:
    """One incident as one escaped line: severity, title, alert count (for run summaries)."""
    return (
        f"{plain(str(incident.get('severity', '')).upper())} {plain(str(incident.get('title')))}"
        f" ({incident.get('alert_count', 0)} alerts)"
    )


def top(incidents: pl.DataFrame, limit: int = TOP_INCIDENTS) -> list[dict[str, Any]]:
    """The most severe incidents as small plain dicts (a flow's result must stay small)."""
    return [
        {
            "incident_id": row[s.INCIDENT_ID],
            "severity": row[s.SEVERITY],
            "title": row[s.TITLE],
            "alert_count": row[s.ALERT_COUNT],
        }
        for row in incidents.head(limit).iter_rows(named=True)
    ]
