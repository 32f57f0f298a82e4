"""Hourly (key, actor) usage features, kept in the lake one day at a time.

``LAKE/features/hourly/event_date=D/features.parquet`` is computed by ``sql/features_hourly.sql``
from that day's events and carries a fingerprint of the event files it came from; it is
recomputed only when that day's events change (late deliveries, a backfill), so a nightly run
touches one or two days of events instead of rescanning the whole baseline window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics import schema as s
from analytics import sql
from analytics.adapters.lake import (
    LocalLake,
    parquet_problem,
    scan_partitions,
    without_partition_column,
    write_parquet_atomic,
)

FINGERPRINT_KEY = b"keytrail.events_fingerprint"

# Only the event columns the feature query reads, so a day of events is scanned narrowly.
FEATURE_INPUT_COLUMNS = (
    s.EVENT_TIME, s.EVENT_DATE, s.EVENT_SOURCE, s.EVENT_NAME, s.KEY_ARN, s.ACTOR,
    s.KEY_ACCOUNT_ID, s.PRINCIPAL_ACCOUNT_ID, s.ERROR_CODE, s.SOURCE_IP, s.AWS_REGION,
    s.INVOKED_BY, s.SOURCE_SERVICE, s.USER_AGENT, s.ENCRYPTION_CONTEXT,
)  # fmt: skip


def features_path(lake: LocalLake, day: dt.date) -> Path:
    return (
        lake.root / "features" / "hourly" / f"{s.EVENT_DATE}={day.isoformat()}" / "features.parquet"
    )


def events_fingerprint(files: Iterable[Path]) -> str:
    """Names, sizes and mtimes of a day's event files: changes whenever the day's events do."""
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def compute_day(events: pa.Table | pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Hourly features of one day from its events (pure: no lake access)."""
    return sql.query("features_hourly", {"events": events}, {"day": day})


def feature_schema() -> pa.Schema:
    """The hourly features' schema, as the SQL produces it (computed on an empty day): the SQL
    is its one definition, so the docs and the engines' DDL take it from there."""
    empty = pl.from_arrow(s.EVENT_SCHEMA.empty_table())
    assert isinstance(empty, pl.DataFrame)
    table = compute_day(empty, dt.date(2000, 1, 1)).to_arrow()
    return pa.schema([f.with_nullable(True) for f in table.schema])


def read_day_events(lake: LocalLake, day: dt.date, columns: Iterable[str]) -> pl.DataFrame:
    files = lake.partition_files(day)
    if not files:
        return pl.DataFrame(schema={c: _polars_type(c) for c in columns})
    return scan_partitions(files, list(columns)).collect()


def _polars_type(column: str) -> pl.DataType:
    field = s.EVENT_SCHEMA.field(column)
    empty = pl.from_arrow(pa.table({column: pa.array([], field.type)}))
    assert isinstance(empty, pl.DataFrame)
    return empty.schema[column]


def ensure_day(lake: LocalLake, day: dt.date, reads: list[Path] | None = None) -> bool:
    """Bring one day's feature file up to date with its events; True if it was (re)computed.

    A day without events has no feature file (readers treat a missing file as no rows), so a
    window reaching back before the lake's first day costs nothing and counts no day; a feature
    file left from events since removed is deleted, which counts as a change."""
    files = lake.partition_files(day)
    target = features_path(lake, day)
    if not files:
        if not target.exists():
            return False
        target.unlink()
        return True
    fingerprint = events_fingerprint(files)
    # A feature file written with event_date inside it (which a Hive reader would see twice)
    # is computed again in today's shape.
    if is_current(target, fingerprint) and s.EVENT_DATE not in pq.read_schema(target).names:
        return False
    events = read_day_events(lake, day, FEATURE_INPUT_COLUMNS)
    if reads is not None:
        reads.extend(files)
    table = without_partition_column(compute_day(events, day).to_arrow())
    write_stamped(table, target, fingerprint)
    return True


def is_current(target: Path, stamp: str) -> bool:
    """Whether a file derived from a day's events exists, is readable and carries ``stamp``
    (:func:`events_fingerprint` of the day's event files, plus whatever else it depends on):
    the one test of staleness for every per-day derived table (features, history)."""
    # A derived file that cannot be read is computed again, never a crash.
    if not target.exists() or parquet_problem(target) is not None:
        return False
    metadata = pq.read_schema(target).metadata or {}
    return metadata.get(FINGERPRINT_KEY) == stamp.encode()


def write_stamped(table: pa.Table, target: Path, stamp: str) -> None:
    """Write a derived file atomically with the stamp :func:`is_current` checks."""
    metadata = dict(table.schema.metadata or {})
    metadata[FINGERPRINT_KEY] = stamp.encode()
    write_parquet_atomic(table.replace_schema_metadata(metadata), target)


def ensure_days(
    lake: LocalLake, days: Iterable[dt.date], reads: list[Path] | None = None
) -> list[dt.date]:
    """Update the feature files of ``days``; returns the days that were recomputed (the event
    files read to do so are added to ``reads``)."""
    return [day for day in days if ensure_day(lake, day, reads)]


def scan(
    lake: LocalLake, first: dt.date, last: dt.date, reads: list[Path] | None = None
) -> pl.LazyFrame:
    """Hourly features of ``first``..``last`` (inclusive) that exist, lazily (the files scanned
    are added to ``reads``)."""
    paths = [
        features_path(lake, first + dt.timedelta(days=i)) for i in range((last - first).days + 1)
    ]
    found = [p for p in paths if p.exists() and lake.readable(p)]
    if reads is not None:
        reads.extend(found)
    empty = compute_day(
        pl.DataFrame(schema={c: _polars_type(c) for c in FEATURE_INPUT_COLUMNS}), first
    )
    if not found:
        return empty.lazy()
    return scan_partitions(found, empty.columns)
