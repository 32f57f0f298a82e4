"""How much of an untrusted string any output may carry, and how it is shown: the one place.

Every string in a CloudTrail record is whatever the caller sent, and a single oversized one must
not make an output unusable: a 1 MB user agent copied whole into an OCSF finding made a 1 MB
line that Splunk HEC refused with 413, and with it every alert after it. So each kind of field
has a limit in UTF-8 bytes (the unit of HEC's ``max_content_length``, of Security Hub's
per-finding limit and of most SIEMs' line limits), :func:`clip` cuts at a code-point boundary and
says so with a visible marker (``…[clipped, 1048576 bytes]``), and :func:`fit` is the final
guard that shrinks a whole JSON document below :data:`MAX_FINDING_BYTES` whatever went into it.

:func:`visible` is the other half of "safe to show": bidi overrides, zero-width and other format
characters, C0/C1 controls (ANSI escapes start with one) and lone surrogates are written as
``\\u202e``-style escapes, so what a reader sees is what the record held. The documents (HTML,
Markdown, CSV) and the terminal apply it; the JSON exports keep the data as it was (JSON escapes
its own controls) and only bound it.

The limits are documented in docs/operations.md ("Output bounds"); change them here only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

# --- limits, in UTF-8 bytes unless named otherwise --------------------------------------------

NAME_BYTES = 256
"""Event names and sources, error codes, detector names, severities, region names."""
IDENTIFIER_BYTES = 2048
"""ARNs, actors, principal and key IDs, event and request IDs, IP addresses or service names."""
USER_AGENT_BYTES = 1024
"""User agents: the field most often stuffed (SDK strings are well under 300 bytes)."""
TEXT_BYTES = 4096
"""Sentences: alert reasons, baselines, error messages, runbooks, feature explanations."""
DEFAULT_FIELD_BYTES = IDENTIFIER_BYTES
"""Any other string that reaches a JSON export."""
MIN_FIELD_BYTES = 64
"""No limit shrinks below this, so a clipped value still shows its start and the marker."""

MAX_EVIDENCE_EVENTS = 5
"""Evidence events written out in full per alert (the alert's count says how many there were)."""
MAX_RELATED_EVENTS = 50
"""Evidence event IDs listed per alert; ``related_events_count`` keeps the full count."""
MAX_LIST_ITEMS = 50
"""Items of any other list in a JSON export."""

MAX_FINDING_BYTES = 60_000
"""One exported OCSF or ASFF finding, serialised: under 64 KiB with room for the HEC envelope."""
MAX_EVENT_BYTES = 64 * 1024 - 1
"""One HEC event or JSON line as sent: under 64 KiB, the line limit SIEMs commonly apply."""

ASFF_TITLE_BYTES = 256
ASFF_DESCRIPTION_BYTES = 1024
ASFF_GENERATOR_ID_BYTES = 512
ASFF_PRODUCT_FIELD_KEY_BYTES = 128
ASFF_PRODUCT_FIELD_BYTES = 2048
ASFF_RECOMMENDATION_BYTES = 512
ASFF_SEVERITY_ORIGINAL_BYTES = 64
ASFF_RELATED_IDS = 20
"""Security Hub's own limits for a ``BatchImportFindings`` finding (byte-based)."""
ASFF_RELATED_FINDINGS = 10
"""``RelatedFindings`` entries per finding: Security Hub takes at most 10."""
ASFF_RESOURCES = 32
"""``Resources`` entries per finding: Security Hub takes at most 32."""

DISPLAY_CHARS = 300
"""Characters of one value shown in a report table cell or a terminal line."""
CSV_CELL_BYTES = 32_000
"""One CSV cell: below the 32,767 characters a spreadsheet cell holds (bytes ≥ characters)."""
TERMINAL_BYTES = 2048
"""One untrusted value printed on the terminal (an error message, a key, a reason)."""

CLIP_MARKER = "…[clipped, {size} bytes]"
"""Appended to a clipped value; ``size`` is the value's full length in UTF-8 bytes."""

# --- clipping ---------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so it always encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def clip(value: Any, max_bytes: int) -> str:
    """``value`` as text of at most ``max_bytes`` UTF-8 bytes, never splitting a code point; a
    clipped value ends with :data:`CLIP_MARKER` naming its full size."""
    text = encodable(value if isinstance(value, str) else str(value))
    if len(text) * 4 <= max_bytes:  # cannot be over: skip encoding the common short value
        return text
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    marker = CLIP_MARKER.format(size=len(data))
    room = max(max_bytes, MIN_FIELD_BYTES) - len(marker.encode("utf-8"))
    return data[: max(room, 0)].decode("utf-8", errors="ignore") + marker


def bound(
    value: Any,
    limits: Mapping[str, int],
    default: int = DEFAULT_FIELD_BYTES,
    max_items: int = MAX_LIST_ITEMS,
    scale: float = 1.0,
    field: str = "",
) -> Any:
    """A JSON-like value with every string clipped to the limit of its field name (``limits``,
    else ``default``) times ``scale``, and every list cut to ``max_items`` × ``scale``."""
    if isinstance(value, str):
        limit = int(limits.get(field, default) * scale)
        return clip(value, max(limit, MIN_FIELD_BYTES))
    if isinstance(value, Mapping):
        return {
            clip(key, NAME_BYTES): bound(item, limits, default, max_items, scale, str(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        keep = max(1, int(max_items * scale))
        return [bound(item, limits, default, max_items, scale, field) for item in value[:keep]]
    return value


def size(document: Any) -> int:
    """Bytes of ``document`` serialised as the exports write it."""
    return len(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


def _pick(document: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        source: Any = document
        parts = path.split(".")
        for part in parts:
            source = source.get(part) if isinstance(source, Mapping) else None
        if source is None:
            continue
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return out


def fit(
    document: Mapping[str, Any],
    limits: Mapping[str, int],
    essential: Sequence[str],
    max_bytes: int = MAX_FINDING_BYTES,
) -> dict[str, Any]:
    """The final guard: ``document`` bounded by ``limits`` and, while its serialised form is
    ``max_bytes`` or more, bounded again with every limit a quarter as large; if even the
    smallest limits do not fit (a document with thousands of keys), only the ``essential``
    dotted paths are kept, clipped to the minimum."""
    scale = 1.0
    while scale * DEFAULT_FIELD_BYTES >= MIN_FIELD_BYTES / 4:
        candidate = bound(document, limits, scale=scale)
        if size(candidate) < max_bytes:
            return dict(candidate)
        scale /= 4
    return dict(bound(_pick(document, essential), {}, MIN_FIELD_BYTES, 1))


# --- visible text -----------------------------------------------------------------------------

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_LINE_BREAKS = frozenset("\t\n\r")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def is_invisible(ch: str) -> bool:
    """Controls, format characters (bidi overrides and isolates, zero-width, BOM), surrogates,
    private-use characters and the Unicode line/paragraph separators."""
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def visible(text: str, keep_breaks: bool = False) -> str:
    """``text`` with every invisible character written as an escape (``\\u202e``, ``\\x1b``) so
    it cannot reorder, hide or style what is around it. With ``keep_breaks`` tab, newline and
    carriage return are left as they are (the caller quotes or replaces them)."""
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if is_invisible(ch) and not (keep_breaks and ch in _LINE_BREAKS) else ch
        for ch in text
    )
