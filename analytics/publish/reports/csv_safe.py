"""CSV that is safe to open in a spreadsheet.

Report CSVs go to auditors, who open them in Excel or LibreOffice; a cell that starts with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheets strip before looking)
is taken as a formula there — CSV injection. Role names may contain ``=``, ``+``, ``@`` and
``-``, user agents and alias names are whatever the caller sent, so every text cell that starts
with one of those characters is prefixed with a single quote, the OWASP-recommended neutraliser
that spreadsheets display but do not evaluate — and so is every line inside a cell that starts
with one after a line break, since some importers split cells on them. Numbers are written as
numbers and are never prefixed (a count is not attacker-controlled, and a quoted number would
not sum).

This module is the only CSV writer of the project, and it formats rows itself instead of using
:mod:`csv`: Python's writer leaves a field with a bare carriage return unquoted when the line
terminator is ``\n``, and a reader then starts a new row there (``x\r=1+1`` became a row
beginning ``=1+1``). Here any cell holding ``"``, ``,``, ``\r`` or ``\n`` is quoted. Invisible
characters (bidi overrides, controls, ANSI escapes) are shown as ``\u202e``-style escapes and
a cell is clipped to :data:`~analytics.publish.export.bounds.CSV_CELL_BYTES`.

Nested values are flattened for people: ``[{name, count}]`` lists read ``Decrypt (120); Encrypt
(3)``, string lists are joined with ``; ``, timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from analytics.publish.export.bounds import CSV_CELL_BYTES, clip, visible

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = "; "
_AFTER_BREAK = re.compile(r"(?<=[\r\n])(?=[=+\-@\t\r])")
_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def neutralise(cell: str) -> str:
    """Prefix a text cell, and each line in it, that a spreadsheet would read as a formula with
    ``'``."""
    cell = _AFTER_BREAK.sub("'", cell)
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value.astimezone(dt.UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if value.tzinfo else "")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        if set(value) == {"name", "count"}:
            return f"{value['name']} ({value['count']})"
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(_text(v) for v in value)
    return str(value)


def cell(value: Any) -> str | int | float:
    """One CSV cell: numbers as they are, everything else as visible, bounded, neutralised
    text."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return clip(neutralise(visible(_text(value), keep_breaks=True)), CSV_CELL_BYTES)


def _field(value: str | int | float) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def _line(cells: list[str | int | float]) -> str:
    if cells == [""]:
        return '""\n'  # a lone empty cell, not a blank line a reader would skip
    return ",".join(_field(value) for value in cells) + "\n"


def rows_to_csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """Header and rows as CSV text (RFC 4180 quoting, ``\n`` between rows)."""
    lines = [_line([cell(name) for name in header])]
    lines.extend(_line([cell(value) for value in row]) for row in rows)
    return "".join(lines)


def to_csv(frame: pl.DataFrame) -> str:
    """The frame as spreadsheet-safe CSV text (header row first)."""
    return rows_to_csv(frame.columns, frame.iter_rows())
