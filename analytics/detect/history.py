"""Detection history as compact tables, kept in the lake one day at a time.

The rules ask the past a few narrow questions: which (key, actor) pairs were seen, what an
alias or a key policy was before today, how often an actor's decrypts fail in an hour. Reading
the raw events of the whole baseline window to answer them would cost a window of events per
scored day, so each rule declares the tables that answer its questions (`HistoryTable` in
`analytics/detect/detectors/base.py`), and one file per table and day is kept:
`LAKE/history/<table>/event_date=D/<table>.parquet`. It is computed from that day's events as
the rules see them, stamped like the hourly features with a fingerprint of the day's event
files (plus the table's version), and recomputed only when either changes. A day whose table
has no rows has no file: its stamp is `LAKE/_state/history/<table>/D.stamp` instead. Scoring a
day reads that day's events and the window's features and history tables, never the events of
the days before it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

from analytics.adapters.lake import LocalLake
from analytics.adapters.lake_fs import LakeFile
from analytics.detect import features
from analytics.detect.detectors._common import RULE_EVENT_COLUMNS, rule_events
from analytics.detect.detectors.base import HistoryTable
from analytics.detect.detectors.registry import ALL_DETECTORS
from analytics.lake import schema as s

HISTORY_DIR = "history"


def _tables() -> tuple[HistoryTable, ...]:
    tables: dict[str, HistoryTable] = {}
    for detector in ALL_DETECTORS:
        for table in detector.history:
            known = tables.setdefault(table.name, table)
            if known is not table:
                raise ValueError(f"two different history tables are named {table.name!r}")
    return tuple(tables.values())


TABLES: tuple[HistoryTable, ...] = _tables()
"""Every history table a registered rule reads, once each, in registry order."""


def table_key(table: HistoryTable, day: dt.date) -> str:
    """The day's file of ``table`` inside the lake."""
    return f"{HISTORY_DIR}/{table.name}/{s.EVENT_DATE}={day.isoformat()}/{table.name}.parquet"


def table_path(lake: LocalLake, table: HistoryTable, day: dt.date) -> Path:
    """:func:`table_key` in a lake folder."""
    return lake.root / table_key(table, day)


def empty_day_key(table: HistoryTable, day: dt.date) -> str:
    """``_state/history/<table>/D.stamp``: the stamp of a day whose table has no rows.

    Such a day has no file in the table's partition (a zero-row file is noise to every engine
    that lists the folder), so this is what says it was computed, and from which events."""
    return f"_state/{HISTORY_DIR}/{table.name}/{day.isoformat()}.stamp"


def empty_day_path(lake: LocalLake, table: HistoryTable, day: dt.date) -> Path:
    """:func:`empty_day_key` in a lake folder."""
    return lake.root / empty_day_key(table, day)


def _current(lake: LocalLake, table: HistoryTable, day: dt.date, stamp: str) -> bool:
    marker = empty_day_key(table, day)
    if lake.store.exists(marker) and lake.store.read_bytes(marker) == stamp.encode():
        return True
    return features.is_current(lake, table_key(table, day), stamp)


def _write(lake: LocalLake, table: HistoryTable, day: dt.date, frame: pl.DataFrame,
           stamp: str) -> None:  # fmt: skip
    """The day's table as a stamped file, or, without rows, as a stamp in ``_state/`` (and no
    file); ``event_date`` is the folder's name, not a column of the file."""
    target, marker = table_key(table, day), empty_day_key(table, day)
    if frame.height:
        features.write_stamped(lake, target, frame.to_arrow(), stamp)
        lake.store.delete(marker)
        return
    lake.store.write_bytes(marker, stamp.encode())
    lake.store.delete(target)
    if not lake.store.remote:
        with contextlib.suppress(OSError):  # not empty, or absent
            Path(lake.store.path(target)).parent.rmdir()


def _stamp(fingerprint: str, table: HistoryTable) -> str:
    return f"{fingerprint};{table.name}@{table.version}"


def compute(events: pl.LazyFrame | pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every history table of ``events`` (the event schema, or already the rule view: the view
    of a view is the view), by name. Pure; rows sorted, so the same events give the same file.
    """
    view = rule_events(events.lazy())
    return {table.name: _sorted(table.build(view).collect()) for table in TABLES}


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True) if frame.width else frame


def empty() -> dict[str, pl.LazyFrame]:
    """Every history table with no rows: the history of a lake with no earlier day."""
    events = pl.from_arrow(s.empty_events())
    assert isinstance(events, pl.DataFrame)
    return {name: frame.lazy() for name, frame in compute(events).items()}


def ensure_day(
    lake: LocalLake,
    day: dt.date,
    events: pl.DataFrame | None = None,
    reads: list[LakeFile] | None = None,
) -> bool:
    """Bring the day's history tables up to date with its events; True if any was (re)written.

    ``events`` may hold the day's events already read (in the rule view, from the day's current
    files), so scoring a day reads them once; otherwise the files are read when a table is stale,
    and named in ``reads``. A day without events has no history files: any left from events
    since removed are deleted, which counts as a change.
    """
    files = lake.listed_event_files(day)  # a listing, no footers: most days are current
    targets = {table.name: table_key(table, day) for table in TABLES}
    if not files:
        markers = [empty_day_key(table, day) for table in TABLES]
        gone = [key for key in [*targets.values(), *markers] if lake.store.exists(key)]
        for key in gone:
            lake.store.delete(key)
        return bool(gone)
    fingerprint = features.events_fingerprint(files)
    stale = [
        table for table in TABLES if not _current(lake, table, day, _stamp(fingerprint, table))
    ]
    if not stale:
        return False
    if events is None:
        usable = lake.event_files(day)
        events = features.read_day_events(lake, day, RULE_EVENT_COLUMNS, usable)
        if reads is not None:
            reads.extend(usable)
    view = rule_events(events.lazy())
    for table in stale:
        frame = _sorted(table.build(view).collect())
        _write(lake, table, day, frame, _stamp(fingerprint, table))
    return True


def ensure_days(
    lake: LocalLake,
    days: Iterable[dt.date],
    loaded: Mapping[dt.date, pl.DataFrame] | None = None,
    reads: list[LakeFile] | None = None,
) -> list[dt.date]:
    """Update the history files of ``days``; returns the days that were recomputed.

    ``loaded`` maps days whose events are already in memory (rule view) to those events.
    """
    loaded = loaded or {}
    return [day for day in days if ensure_day(lake, day, loaded.get(day), reads)]


def scan(
    lake: LocalLake, first: dt.date, last: dt.date, reads: list[LakeFile] | None = None
) -> dict[str, pl.LazyFrame]:
    """Every history table over ``first``..``last`` (inclusive), lazily, by name; the files
    scanned are added to ``reads``."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    empties = empty()
    tables: dict[str, pl.LazyFrame] = {}
    for table in TABLES:
        found = [lake.lake_file(table_key(table, day)) for day in days]
        existing = [f for f in found if f is not None]
        if reads is not None:
            reads.extend(existing)
        names = empties[table.name].collect_schema().names()
        tables[table.name] = (
            lake.store.scan_days(existing, names) if existing else empties[table.name]
        )
    return tables
