"""Incidents on the terminal: what ``keytrail detect`` shows first, and the one-liners of ``run``.

An analyst triages incidents, so they come before the alert list, each with what it is about
(title, severity, how many alerts) and who and what it touched, in the short names people
recognise (:func:`analytics.detect.incidents.short_arn`). Every value comes from records, so every
one goes through :func:`flows.console.plain`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from rich.console import Console

from analytics.detect.incidents import short_arn
from analytics.lake import schema as s
from analytics.publish.export.bounds import visible
from analytics.redact import redact
from flows.console import plain

SHOWN_NAMES = 3
"""Actors and keys named per incident; the rest are counted."""


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


def one_line(incident: Mapping[str, Any], width: int | None = None) -> str:
    """One incident as one escaped line.

    Without ``width``: severity, title and alert count, the title naming actors and keys in
    full (``keytrail run``'s summary, soft-wrapped). With ``width``: severity, the leading
    finding, who and on which keys, in the short names of :func:`short_name`, fitted to
    ``width`` columns (keys left out first, then clipped) — the demo's closing summary is read
    on an 80-column terminal.
    """
    severity = str(incident.get("severity", "")).upper()
    title = str(incident.get("title"))
    if width is None:
        return f"{plain(severity)} {plain(title)} ({incident.get('alert_count', 0)} alerts)"
    actors = [short_name(str(a)) for a in incident.get(s.ACTORS) or []]
    keys = [str(k) for k in incident.get(s.KEY_ARNS) or []]
    who = f"{actors[0]} +{len(actors) - 1}" if len(actors) > 1 else (actors or ["?"])[0]
    where = f" on {short_arn(keys[0])}" if len(keys) == 1 else (
        f" across {len(keys)} keys" if keys else ""
    )  # fmt: skip
    lead = _LEAD.match(title)
    finding = lead.group(1) if lead else title
    line = f"{severity:8} {finding}: {who}{where}"
    if len(visible(line)) > width:  # the keys go first: the report names them
        line = f"{severity:8} {finding}: {who}"
    return plain(fit(line, width))


_LEAD = re.compile(r"^(.+?)(?: \(\+\d+ other findings?\))?: .+$")
"""An incident title: the leading alert's title, how many other findings, then who and where
(:func:`analytics.detect.incidents.group` writes it)."""


def short_name(actor: str) -> str:
    """The last part of an actor's name (``role/app/billing`` → ``billing``); ``root:…`` and
    ``service:…`` as they are. For a glance: the reports and ``keytrail detect`` name it in
    full."""
    name = short_arn(actor).rpartition("@")[0] or short_arn(actor)
    return name.rsplit("/", 1)[-1] if "/" in name else name


def fit(text: str, width: int) -> str:
    """``text`` made visible (controls as escapes) and clipped to ``width`` characters with
    an ellipsis; not yet escaped for rich markup."""
    shown = visible(redact(text))
    return shown if len(shown) <= width else shown[: max(width - 1, 0)] + "…"
