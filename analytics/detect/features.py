"""Hourly (key, actor) usage features, kept in the lake one day at a time.

``LAKE/features/hourly/event_date=D/features.parquet`` is computed by ``sql/features_hourly.sql``
from that day's events and carries a fingerprint of the event files it came from; it is
recomputed only when that day's events change (late deliveries, a backfill), so a nightly run
touches one or two days of events instead of rescanning the whole baseline window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from analytics import sql
from analytics.adapters.lake import LocalLake, lake_file_problem, without_partition_column
from analytics.adapters.lake_fs import LakeFile
from analytics.lake import schema as s

FINGERPRINT_KEY = b"keytrail.events_fingerprint"

# Only the event columns the feature query reads, so a day of events is scanned narrowly.
FEATURE_INPUT_COLUMNS = (
    s.EVENT_TIME, s.EVENT_DATE, s.EVENT_SOURCE, s.EVENT_NAME, s.KEY_ARN, s.ACTOR,
    s.KEY_ACCOUNT_ID, s.PRINCIPAL_ACCOUNT_ID, s.ERROR_CODE, s.SOURCE_IP, s.AWS_REGION,
    s.INVOKED_BY, s.SOURCE_SERVICE, s.USER_AGENT, s.ENCRYPTION_CONTEXT,
)  # fmt: skip


# Feature columns no baseline, rule or model reads: for analysts. Leaving them out of detect's
# scan spares a third of each feature file's bytes, which on an S3 lake are bytes downloaded.
NOT_FOR_DETECTION = ("first_event_time", "last_event_time")


def features_key(day: dt.date) -> str:
    """The day's feature file inside the lake."""
    return f"features/hourly/{s.EVENT_DATE}={day.isoformat()}/features.parquet"


def features_path(lake: LocalLake, day: dt.date) -> Path:
    """:func:`features_key` in a lake folder."""
    return lake.root / features_key(day)


def events_fingerprint(files: Iterable[LakeFile]) -> str:
    """Names, sizes and mtimes of a day's event files: changes whenever the day's events do."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.path):
        digest.update(f"{file.name}:{file.size}:{file.mtime_ns};".encode())
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


def read_day_events(
    lake: LocalLake,
    day: dt.date,
    columns: Iterable[str],
    files: Sequence[LakeFile] | None = None,
) -> pl.DataFrame:
    """``columns`` of the day's events; ``files``: its usable event files, when the caller has
    listed them already (and names them among the files it read)."""
    files = lake.event_files(day) if files is None else files
    if not files:
        return pl.DataFrame(schema={c: _polars_type(c) for c in columns})
    return lake.store.scan_days(files, list(columns), s.EVENT_SCHEMA).collect()


def _polars_type(column: str) -> pl.DataType:
    field = s.EVENT_SCHEMA.field(column)
    empty = pl.from_arrow(pa.table({column: pa.array([], field.type)}))
    assert isinstance(empty, pl.DataFrame)
    return empty.schema[column]


def ensure_day(lake: LocalLake, day: dt.date, reads: list[LakeFile] | None = None) -> bool:
    """Bring one day's feature file up to date with its events; True if it was (re)computed.

    A day without events has no feature file (readers treat a missing file as no rows), so a
    window reaching back before the lake's first day costs nothing and counts no day; a feature
    file left from events since removed is deleted, which counts as a change."""
    listed = lake.listed_event_files(day)  # a listing, no footers: most days are current
    key = features_key(day)
    if not listed:
        if not lake.store.exists(key):
            return False
        lake.store.delete(key)
        return True
    fingerprint = events_fingerprint(listed)
    if is_current(lake, key, fingerprint):
        return False
    files = lake.event_files(day)
    events = read_day_events(lake, day, FEATURE_INPUT_COLUMNS, files)
    if reads is not None:
        reads.extend(files)
    write_stamped(lake, key, compute_day(events, day).to_arrow(), fingerprint)
    return True


def is_current(lake: LocalLake, key: str, stamp: str) -> bool:
    """Whether a file derived from a day's events (``key`` in the lake) exists, is readable and
    carries ``stamp`` (:func:`events_fingerprint` of the day's event files, plus whatever else
    it depends on): the one test of staleness for every per-day derived table (features,
    history). On S3 it costs the file's footer, which later reads of the file reuse."""
    # A derived file that cannot be read is computed again, never a crash.
    target = lake.store.file(key)
    if target is None or lake_file_problem(lake.store, target) is not None:
        return False
    schema = lake.store.read_schema(target)
    # A file written with event_date inside it (which a Hive reader would see twice) is
    # computed again in today's shape.
    if s.EVENT_DATE in schema.names:
        return False
    return (schema.metadata or {}).get(FINGERPRINT_KEY) == stamp.encode()


def write_stamped(lake: LocalLake, key: str, table: pa.Table, stamp: str) -> None:
    """Write a derived file atomically with the stamp :func:`is_current` checks, without
    ``event_date`` (its folder's name says the day)."""
    table = without_partition_column(table)
    metadata = dict(table.schema.metadata or {})
    metadata[FINGERPRINT_KEY] = stamp.encode()
    lake.store.write_parquet(key, table.replace_schema_metadata(metadata))


def ensure_days(
    lake: LocalLake, days: Iterable[dt.date], reads: list[LakeFile] | None = None
) -> list[dt.date]:
    """Update the feature files of ``days``; returns the days that were recomputed (the event
    files read to do so are added to ``reads``)."""
    return [day for day in days if ensure_day(lake, day, reads)]


def scan(
    lake: LocalLake, first: dt.date, last: dt.date, reads: list[LakeFile] | None = None
) -> pl.LazyFrame:
    """Hourly features of ``first``..``last`` (inclusive) that exist, lazily (the files scanned
    are added to ``reads``)."""
    candidates = [
        lake.lake_file(features_key(first + dt.timedelta(days=i)))
        for i in range((last - first).days + 1)
    ]
    found = [f for f in candidates if f is not None]
    if reads is not None:
        reads.extend(found)
    empty = compute_day(
        pl.DataFrame(schema={c: _polars_type(c) for c in FEATURE_INPUT_COLUMNS}), first
    )
    if not found:
        return empty.lazy()
    return lake.store.scan_days(found, empty.columns)
