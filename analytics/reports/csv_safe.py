"""CSV that is safe to open in a spreadsheet.

Report CSVs go to auditors, who open them in Excel or LibreOffice; a cell that starts with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheets strip before looking)
is taken as a formula there — CSV injection. Role names may contain ``=``, ``+``, ``@`` and
``-``, user agents and alias names are whatever the caller sent, so every text cell that starts
with one of those characters is prefixed with a single quote, the OWASP-recommended neutraliser
that spreadsheets display but do not evaluate. Numbers are written as numbers and are never
prefixed (a count is not attacker-controlled, and a quoted number would not sum).

Nested values are flattened for people: ``[{name, count}]`` lists read ``Decrypt (120); Encrypt
(3)``, string lists are joined with ``; ``, timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = "; "


def neutralise(cell: str) -> str:
    """Prefix a text cell that a spreadsheet would read as a formula with ``'``."""
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
    """One CSV cell: numbers as they are, everything else as neutralised text."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return neutralise(_text(value))


def rows_to_csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue()


def to_csv(frame: pl.DataFrame) -> str:
    """The frame as spreadsheet-safe CSV text (header row first)."""
    return rows_to_csv(frame.columns, frame.iter_rows())
