"""Detection history as compact per-day tables: scoring a day reads that day's events and the
window's derived files, never the events of the days before it, and says the same."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from analytics.adapters.lake import LocalLake
from analytics.detect import history
from analytics.detect.scoring import run
from analytics.lake import schema as s
from tests.hive import read_table

LAST_DAY = dt.date(2026, 11, 14)


def _scramble_data_pages(path: Path) -> None:
    """Zero everything between the leading magic and the footer, keeping size and mtime: the
    file still lists as the same usable event file with the same fingerprint, but reading any
    of its rows fails."""
    stat = path.stat()
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little") + 8
    path.write_bytes(data[:4] + bytes(len(data) - 4 - footer) + data[-footer:])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _lake_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_scoring_a_day_reads_no_earlier_days_events(lake_copy: LocalLake) -> None:
    first = run(lake_copy, LAST_DAY)  # the first run derives features and history of the window
    earlier = [
        path
        for day in lake_copy.event_dates()
        if day < LAST_DAY
        for path in lake_copy.partition_files(day)
    ]
    assert earlier
    for path in earlier:
        _scramble_data_pages(path)
    with pytest.raises(Exception):  # noqa: B017 - any reader's error: the rows are gone
        pl.read_parquet(earlier[0])

    again = run(lake_copy, LAST_DAY)

    assert again.summary["feature_days_recomputed"] == 0
    assert again.summary["history_days_recomputed"] == 0
    assert again.alerts.sort(s.ALERT_ID).equals(first.alerts.sort(s.ALERT_ID))
    read = {p.relative_to(lake_copy.root).as_posix() for p in again.files_read}
    events_read = {p for p in read if p.startswith("events/")}
    assert events_read == {
        p.relative_to(lake_copy.root).as_posix() for p in lake_copy.partition_files(LAST_DAY)
    }
    for table in history.TABLES:
        assert any(p.startswith(f"history/{table.name}/") for p in read), table.name
    lake_bytes = _lake_bytes(lake_copy.root)
    share = again.summary["bytes_read"] / lake_bytes
    print(f"bytes read {again.summary['bytes_read']:,} of {lake_bytes:,} ({share:.1%})")
    assert again.summary["bytes_read"] == sum(p.stat().st_size for p in again.files_read)
    assert share < 0.5


def test_history_tables_built_day_by_day_equal_one_build_over_the_days(
    sample_lake: LocalLake,
) -> None:
    days = sample_lake.event_dates()
    stored = read_table(sample_lake.events_dir, s.EVENT_COLUMNS)
    events = [stored.filter(pl.col(s.EVENT_DATE) == day) for day in days]
    whole = history.compute(pl.concat(events))
    by_day = [history.compute(frame) for frame in events]
    for table in history.TABLES:
        joined = pl.concat([tables[table.name] for tables in by_day])
        expected = whole[table.name]
        assert expected.height > 0, f"{table.name} has rows on the sample trail"
        columns = expected.columns
        assert joined.unique().sort(columns).equals(expected.unique().sort(columns)), table.name


def test_history_is_recomputed_only_when_the_days_events_change(lake_copy: LocalLake) -> None:
    run(lake_copy, LAST_DAY, dry_run=True)
    assert run(lake_copy, LAST_DAY, dry_run=True).summary["history_days_recomputed"] == 0
    day = LAST_DAY - dt.timedelta(days=3)
    path = history.table_path(lake_copy, history.TABLES[0], day)
    before = path.stat().st_mtime_ns
    moved = lake_copy.partition_files(day)[0]
    moved.rename(moved.with_name("part-moved.parquet"))  # the day's files changed
    changed = run(lake_copy, LAST_DAY, dry_run=True)
    assert changed.summary["history_days_recomputed"] == 1
    assert path.stat().st_mtime_ns != before


def test_a_day_without_events_loses_its_history_files(lake_copy: LocalLake) -> None:
    day = LAST_DAY - dt.timedelta(days=2)
    assert history.ensure_day(lake_copy, day)
    paths = [history.table_path(lake_copy, table, day) for table in history.TABLES]
    assert all(path.exists() for path in paths)
    for path in lake_copy.partition_files(day):
        path.unlink()
    assert history.ensure_day(lake_copy, day)
    assert not any(path.exists() for path in paths)
