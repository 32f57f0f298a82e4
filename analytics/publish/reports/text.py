"""Turning report values into display text, shared by the HTML and Markdown renderers.

Formatting lives here once so the two documents say the same thing in the same words; escaping
does not — each renderer escapes for its own syntax, after formatting, so nothing formatted here
may be trusted as markup. What is done here for both is making record text *visible*: bidi
overrides, zero-width and other format characters, controls and ANSI escapes are written as
``\u202e``-style escapes (:func:`analytics.publish.export.bounds.visible`), so a key name cannot
reorder or hide the text around it, and long values are clipped with a note of how much.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analytics.lake import schema as s
from analytics.publish.export.bounds import DISPLAY_CHARS, visible

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
    "keys_open_to_anyone": "keys open to anyone",
    "keys_open_to_outside_accounts": "keys open to outside accounts",
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


LABEL_CHARS = 40
"""A key label longer than this (an attacker can name an alias) is cut: labels sit in narrow
table columns, and the full ARN is always one hover or one legend away."""
_KEY_ID_CHARS = 8
_KEY_ARN = re.compile(r"^arn:[a-z-]+:kms:[^:]*:[^:]*:(key|alias)/(.+)$", re.DOTALL)
_IAM_PREFIX = re.compile(r"\barn:aws[a-z-]*:iam::(\d{12}):")


def key_label(key: Any, aliases: Sequence[str] | None = None) -> str:
    """How a key is named in every table of both documents: its first alias, else its short key
    ID (``key/c4761df1…``), else the value as given — never the full ARN, which made every key
    column a few characters wide and every row many lines tall."""
    if key is None:
        return MISSING
    names = [a for a in aliases or [] if a]
    match = _KEY_ARN.match(str(key))
    if names:
        label = names[0]
    elif match and match.group(1) == "key":
        key_id = match.group(2)
        width = _KEY_ID_CHARS + (4 if key_id.startswith("mrk-") else 0)
        label = f"key/{key_id[:width]}" + ("…" if len(key_id) > width else "")
    elif match:
        label = f"alias/{match.group(2)}"
    else:
        label = str(key)
    cut = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
    return visible(cut)


def short_arn(text: str) -> str:
    """IAM ARNs within ``text`` as ``<account>:<resource>``: the partition and service only
    repeat themselves in a table of principals."""
    return _IAM_PREFIX.sub(r"\1:", text)


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


def related_keys(alert: Mapping[str, Any]) -> str | None:
    """The keys of an alert about several (a model sweep), most used first; None for others."""
    keys = alert.get(s.RELATED_KEY_ARNS)
    return f"{len(keys)}: {listed(keys, limit=10, width=200)}" if keys else None


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
