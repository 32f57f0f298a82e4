"""Turning report values into display text, shared by the HTML and Markdown renderers.

Formatting lives here once so the two documents say the same thing in the same words; escaping
does not — each renderer escapes for its own syntax, after formatting, so nothing formatted here
may be trusted as markup. What is done here for both is making record text *visible*: bidi
overrides, zero-width and other format characters, controls and ANSI escapes are written as
``\u202e``-style escapes (:func:`analytics.export.bounds.visible`), so a key name cannot
reorder or hide the text around it, and long values are clipped with a note of how much.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from analytics import schema as s
from analytics.export.bounds import DISPLAY_CHARS, visible

MISSING = "—"
DISPLAY_LIMIT = DISPLAY_CHARS

HEADLINE_LABELS: dict[str, str] = {
    "kms_calls": "KMS calls",
    "failed_calls": "failed calls",
    "keys_used": "keys used",
    "actors": "actors",
    "new_key_actor_pairs": "new key–actor pairs",
    "alerts": "alerts",
    "incident_count": "incidents",
    "alerts_outside_incidents": "alerts outside incidents",
    "suppressed_alerts": "suppressed alerts",
    "policy_changes": "key policy changes",
    "grant_changes": "grant changes",
    "failed_changes": "denied policy/grant calls",
    "keys_in_inventory": "keys known",
    "rotation_overdue": "rotation overdue",
    "rotation_disabled": "rotation disabled",
    "keys_pending_deletion": "keys pending deletion",
    "event_id_clashes": "eventID clashes quarantined",
}


def clean(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """A value as display text: invisible characters shown as escapes (line breaks and tabs
    kept), clipped to ``limit`` characters of the original with a note of how many more."""
    if value is None:
        return MISSING
    text = str(value)
    shown = visible(text[:limit], keep_breaks=True)
    if len(text) > limit:
        shown = f"{shown}… ({len(text) - limit:,} more characters)"
    return shown


def one_line(value: Any, limit: int = DISPLAY_LIMIT) -> str:
    """Like :func:`clean`, with line breaks turned into spaces (for table cells)."""
    return clean(value, limit).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def when(value: dt.datetime | dt.date | None, seconds: bool = False) -> str:
    if value is None:
        return MISSING
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " UTC"
    return value.isoformat()


def window(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None:
        return MISSING
    if end is None or end == start:
        return when(start, seconds=True)
    same_day = start.date() == end.date()
    return f"{when(start)} – {end:%H:%M} UTC" if same_day else f"{when(start)} – {when(end)}"


def number(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


def yes_no(value: bool | None) -> str:
    return MISSING if value is None else ("yes" if value else "no")


def counted(items: Iterable[Mapping[str, Any]] | None, limit: int = 3) -> str:
    """``Decrypt ×120, Encrypt ×3 (+2 more)`` from a list of {name, count}."""
    entries = list(items or [])
    shown = ", ".join(f"{clean(e['name'], 120)} ×{e['count']:,}" for e in entries[:limit])
    more = len(entries) - limit
    return f"{shown} (+{more} more)" if more > 0 else (shown or MISSING)


def listed(items: Iterable[Any] | None, limit: int = 5, width: int = 120) -> str:
    entries = [clean(item, width) for item in (items or [])]
    shown = ", ".join(entries[:limit])
    more = len(entries) - limit
    return f"{shown} (+{more} more)" if more > 0 else (shown or MISSING)


def incident_facts(incident: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An incident's facts as (label, display text), in the order both documents show them;
    facts the incident does not have are left out."""

    facts = [
        ("Seen", window(incident[s.FIRST_SEEN], incident[s.LAST_SEEN])),
        ("Actors", listed(incident[s.ACTORS], 8)),
        ("Keys", listed(incident[s.KEY_ARNS], 8)),
        ("Accounts", listed(incident[s.ACCOUNT_IDS], 8)),
        ("ATT&CK tactics", " → ".join(incident[s.TACTICS] or []) or None),
        ("ATT&CK techniques", listed(incident[s.TECHNIQUES], 8)),
        ("Severity raised", incident[s.SEVERITY_RAISED_BECAUSE]),
        ("Why together", listed(incident[s.LINKS], 6, 200)),
        ("Alerts", number(incident[s.ALERT_COUNT])),
        ("Incident ID", incident[s.INCIDENT_ID]),
    ]
    return [(label, value) for label, value in facts if value is not None]
