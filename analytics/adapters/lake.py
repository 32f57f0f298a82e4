"""The lake on a local disk: Hive-partitioned Parquet written atomically.

Every file is written beside its final name as a hidden ``.tmp-…`` file, flushed, then renamed,
so a reader or a killed writer never sees half a file; readers that scan ``*.parquet`` ignore
the temporaries, and the next writer removes stale ones.

Every reader of event files lists them through :meth:`LocalLake.event_files`, which leaves
out a file that is not readable Parquet in the event schema (a stray copy, a truncated upload,
another tool's output) instead of letting one bad file stop every stage. Telling costs one
footer read per file, remembered per (path, mtime, size) for the process's life; what was left
out and why is kept on the lake for the command to report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.adapters.lake_fs import LakeFile, LakeFS
from analytics.ingest.staging import StagingArea
from analytics.lake import schema as s

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True}
# Event files, the bulk of every ingest's writing: dictionary-encode only the columns that
# repeat (trying a dictionary on IDs, times and JSON payloads costs a third of the write for
# nothing), and zstd level 1, which on CloudTrail columns is 20% faster than level 3 and no
# larger. Min/max statistics, which let readers skip row groups, are kept for the time and the
# repeating columns; on IDs and JSON payloads (random or unique per event) they could never
# skip anything and cost a fifth of the write.
_REPEATING_EVENT_COLUMNS = [
    c for c in s.EVENT_FILE_SCHEMA.names if c not in s.UNIQUE_PER_EVENT_COLUMNS
]
EVENT_PARQUET_OPTIONS = {
    **PARQUET_OPTIONS,
    "compression_level": 1,
    "use_dictionary": _REPEATING_EVENT_COLUMNS,
    "write_statistics": [s.EVENT_TIME, *_REPEATING_EVENT_COLUMNS],
}
_TMP_PREFIX = ".tmp-"
PARTITION_PREFIX = f"{s.EVENT_DATE}="
STATE_KEY = "_state/objects.parquet"

# (path, mtime_ns, size, id of the expected schema) → why the file is not usable, or None.
# The schemas are module constants, so their ids are stable for the process's life.
_VERDICTS: dict[tuple[str, int, int, int], str | None] = {}


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    # Hidden and not ending in .parquet: no reader's glob (Spark, DuckDB, Polars) picks it up.
    tmp = final.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}-{final.name}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, final: Path) -> None:
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)


def write_bytes_atomic(data: bytes, final: Path) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def safe_name(key: str) -> str:
    """A file name for an object key that can never escape its folder (keys are untrusted)."""
    return hashlib.sha256(key.encode("utf-8", errors="replace")).hexdigest()[:24]


def schema_mismatch(found: pa.Schema, expected: pa.Schema) -> str | None:
    """How ``found`` differs from ``expected`` (names and types; order and metadata aside).

    ``event_date`` lives in the partition folder's name; a file may lack it (as every file
    written today does) or carry it as a date (as files written before did)."""
    missing = [name for name in expected.names if name not in found.names and name != s.EVENT_DATE]
    extra = [name for name in found.names if name not in expected.names]
    wrong = [
        f"{name} is {found.field(name).type}, not {expected.field(name).type}"
        for name in expected.names
        if name in found.names and not found.field(name).type.equals(expected.field(name).type)
    ]
    problems = []
    if missing:
        problems.append(f"missing column(s) {_few(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {_few(extra)}")
    problems.extend(wrong[:5])
    return "; ".join(problems) or None


def _few(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )


def parquet_problem(
    path: Path, expected: pa.Schema | None = None, what: str = "expected"
) -> str | None:
    """Why ``path`` cannot be read as Parquet (in the ``expected`` schema, if one is given), or
    None if it can.

    Reads only the footer, once per (path, mtime, size, schema) in a process.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    key = (str(path), stat.st_mtime_ns, stat.st_size, id(expected))
    return _schema_verdict(key, lambda: pq.read_schema(path), expected, what)


def _schema_verdict(
    key: tuple[str, int, int, int],
    read_schema: Callable[[], pa.Schema],
    expected: pa.Schema | None,
    what: str,
) -> str | None:
    """Why the file ``key`` names is not usable (its footer unreadable, or not in ``expected``),
    or None; remembered per (path, mtime, size, schema) so a file's footer is read once."""
    if key in _VERDICTS:
        return _VERDICTS[key]
    try:
        found = read_schema()
    except (OSError, pa.ArrowException) as exc:
        verdict: str | None = f"not a readable Parquet file ({_first_line(exc)})"
    else:
        mismatch = schema_mismatch(found, expected) if expected is not None else None
        verdict = f"not in the {what} schema ({mismatch})" if mismatch else None
    _VERDICTS[key] = verdict
    return verdict


def lake_file_problem(
    store: LakeFS, file: LakeFile, expected: pa.Schema | None = None, what: str = "expected"
) -> str | None:
    """:func:`parquet_problem` for a file on the lake's filesystem (one footer read, remembered
    per (path, mtime, size, schema) in a process)."""
    if not store.remote:
        return parquet_problem(Path(file.path), expected, what)
    key = (f"{store.uri}|{file.path}", file.mtime_ns, file.size, id(expected))
    return _schema_verdict(key, lambda: store.read_schema(file), expected, what)


def event_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable event file (unreadable, or not in the event schema), or None."""
    return parquet_problem(path, s.EVENT_SCHEMA, "event")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def partition_date(name: str) -> dt.date | None:
    """The day of an ``event_date=YYYY-MM-DD`` folder name, or None if it is not one."""
    if not name.startswith(PARTITION_PREFIX):
        return None
    try:
        return dt.date.fromisoformat(name.removeprefix(PARTITION_PREFIX))
    except ValueError:
        return None


def file_day(path: Path | str) -> dt.date:
    """The day of a file in an ``event_date=YYYY-MM-DD`` folder (ValueError if it is not in one)."""
    folder = Path(path).parent.name
    day = partition_date(folder)
    if day is None:
        raise ValueError(f"{path} is not in an {PARTITION_PREFIX}YYYY-MM-DD folder")
    return day


def without_partition_column(table: pa.Table) -> pa.Table:
    """``table`` as it is written into a day's folder: without ``event_date``.

    The folder's name carries the day. Keeping the column in the file as well would give every
    engine two sources for one column, and pyarrow (``partitioning="hive"``) and Spark refuse a
    file column whose type differs from the one they infer from the path."""
    return table.drop_columns([s.EVENT_DATE]) if s.EVENT_DATE in table.column_names else table


def with_partition_column(table: pa.Table, day: dt.date, schema: pa.Schema) -> pa.Table:
    """A file's rows with ``event_date`` (the folder's day) back at its place in ``schema``.

    A file written before the column left the files carries it already; the folder's day
    replaces it, so old and new files read the same."""
    table = without_partition_column(table)
    index = min(schema.get_field_index(s.EVENT_DATE), table.num_columns)
    days = pa.array([day] * table.num_rows, pa.date32())
    return table.add_column(index, pa.field(s.EVENT_DATE, pa.date32(), nullable=False), days)


def read_partition_file(path: Path, schema: pa.Schema) -> pa.Table:
    """One partitioned lake file with its ``event_date`` from the folder name."""
    return with_partition_column(pq.read_table(path), file_day(path), schema)


def scan_partitions(files: Iterable[Path | str], names: Sequence[str]) -> pl.LazyFrame:
    """Partitioned lake files as one lazy frame with columns ``names``, ``event_date`` taken
    from each file's folder.

    One scan per day: the day is a literal, so a filter on it prunes whole days, and files of
    both shapes (with the column, written before it left the files, and without) mix in a day.
    Not Polars' own Hive parsing: it reads every ``name=value`` folder of the path, including
    any above the lake."""
    by_day: dict[dt.date, list[str]] = {}
    for path in files:
        by_day.setdefault(file_day(path), []).append(str(path))
    frames = [
        pl.scan_parquet(paths, hive_partitioning=False, missing_columns="insert",
                        extra_columns="ignore")
        .with_columns(pl.lit(day, dtype=pl.Date).alias(s.EVENT_DATE))
        .select(names)
        for day, paths in sorted(by_day.items())
    ]  # fmt: skip
    if not frames:
        raise ValueError("no files to scan")
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


@dataclass(frozen=True)
class LocalLake:
    """``LAKE/events``, ``LAKE/_state``, ``LAKE/quarantine``, ``LAKE/alerts``, ``LAKE/reports``.

    ``store`` is where the files are (:class:`LakeFS`): the folder ``root`` by default, or an S3
    prefix worked on in place, in which case ``root`` only names the lake's files on this
    machine (nothing is written under it) and every reader and writer goes through ``store``.
    """

    root: Path
    # Lake files left out by readers of this lake, by path relative to the root: the reason.
    skipped: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    store: LakeFS = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        given: LakeFS | None = self.store  # None (the default): the folder ``root``
        if given is None:
            object.__setattr__(self, "store", LakeFS.local(self.root))

    @property
    def name(self) -> str:
        """The lake as the user names it: a folder, or ``s3://bucket/prefix``."""
        return self.store.uri if self.store.remote else str(self.root)

    @property
    def in_place(self) -> bool:
        """Whether the lake is read and written where it is, in S3 (no local copy)."""
        return self.store.remote

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def state_file(self) -> Path:
        return self.root / "_state" / "objects.parquet"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def partition_dir(self, day: dt.date) -> Path:
        return self.events_dir / f"{s.EVENT_DATE}={day.isoformat()}"

    @staticmethod
    def partition_key(day: dt.date) -> str:
        return f"events/{s.EVENT_DATE}={day.isoformat()}"

    def event_files(self, day: dt.date) -> list[LakeFile]:
        """The day's event files that can be read in the event schema, listed on the lake's
        filesystem (one listing of one partition); the others are noted in :attr:`skipped`."""
        listed = self.store.files(self.partition_key(day))
        return [f for f in listed if f.name.endswith(".parquet") and self.usable(f, s.EVENT_SCHEMA)]

    def listed_event_files(self, day: dt.date) -> list[LakeFile]:
        """Every ``*.parquet`` in the day's partition, unchecked: one listing, no footer read.
        Enough to tell whether a day has events and to fingerprint them (a file that is not
        usable changes the fingerprint as any other would); readers use :meth:`event_files`."""
        return [f for f in self.store.files(self.partition_key(day)) if f.name.endswith(".parquet")]

    def partition_files(self, day: dt.date) -> list[Path]:
        """:meth:`event_files` as local paths; only for a lake in a folder."""
        return [Path(f.path) for f in self.event_files(day)]

    def usable(self, file: LakeFile, schema: pa.Schema | None = None) -> bool:
        """Whether a lake file can be read (in ``schema``); if not, it is noted in
        :attr:`skipped` for the command to report, and the caller leaves it out."""
        what = "event" if schema is s.EVENT_SCHEMA else "expected"
        problem = lake_file_problem(self.store, file, schema, what)
        if problem is not None:
            self.skipped[file.relative] = problem
        return problem is None

    def lake_file(self, relative: str, schema: pa.Schema | None = None) -> LakeFile | None:
        """The file at ``relative`` if it exists and is readable Parquet (in ``schema``)."""
        found = self.store.file(relative)
        return found if found is not None and self.usable(found, schema) else None

    def readable(self, path: Path, schema: pa.Schema | None = None) -> bool:
        """Whether a lake file can be read (in ``schema``); if not, it is noted in
        :attr:`skipped` for the command to report, and the caller leaves it out."""
        problem = (
            event_file_problem(path) if schema is s.EVENT_SCHEMA else parquet_problem(path, schema)
        )
        if problem is not None:
            self.skipped[path.relative_to(self.root).as_posix()] = problem
        return problem is None

    def skipped_files(self) -> dict[str, str]:
        """Lake files readers left out so far (path relative to the root → reason), sorted."""
        return dict(sorted(self.skipped.items()))

    def event_dates(self) -> list[dt.date]:
        """Days with a partition folder; a folder whose name is not a date is left out."""
        days = []
        for name in self.store.folders("events"):
            day = partition_date(name)
            if day is not None:
                days.append(day)
            elif name.startswith(PARTITION_PREFIX):
                self.skipped[f"events/{name}"] = "partition folder name is not a date"
        return sorted(days)

    def remove_stale_temporaries(self) -> int:
        """Delete ``.tmp-*`` files a killed writer left behind; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.rglob(f"{_TMP_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def read_state(self) -> pa.Table:
        """Which source objects were read (see :meth:`read_state_versioned`)."""
        return self.read_state_versioned()[0]

    def read_state_versioned(self) -> tuple[pa.Table, str | None]:
        """Which source objects were read, and the version of ``_state/objects.parquet`` a
        commit must find to replace it (S3: its ETag; None when there is none, or in a folder).

        An unreadable state file counts as none (noted in :attr:`skipped`): the state only
        spares re-reading objects, and ingest de-duplicates by event ID, so reading everything
        again loses nothing and the next commit rewrites it."""
        if not self.in_place:
            return self._read_local_state(), None
        data, version = self.store.read_versioned(STATE_KEY)
        if data is None:
            return s.OBJECT_STATE_SCHEMA.empty_table(), None
        try:
            table = pq.read_table(pa.BufferReader(data))
            problem = schema_mismatch(table.schema, s.OBJECT_STATE_SCHEMA)
            if problem:
                raise ValueError(problem)
            return table.cast(s.OBJECT_STATE_SCHEMA), version
        except (OSError, ValueError, pa.ArrowException) as exc:
            self.skipped[STATE_KEY] = f"cannot be read as the object state ({_first_line(exc)})"
            return s.OBJECT_STATE_SCHEMA.empty_table(), version

    def _read_local_state(self) -> pa.Table:
        if not self.state_file.exists() or not self.readable(self.state_file):
            return s.OBJECT_STATE_SCHEMA.empty_table()
        try:
            return pq.read_table(self.state_file).cast(s.OBJECT_STATE_SCHEMA)
        except (OSError, pa.ArrowException) as exc:  # a footer that reads, pages that do not
            self.skipped[self.state_file.relative_to(self.root).as_posix()] = (
                f"cannot be read as the object state ({_first_line(exc)})"
            )
            return s.OBJECT_STATE_SCHEMA.empty_table()

    def write_state(self, table: pa.Table, version: str | None = None) -> str | None:
        """Replace ``_state/objects.parquet``; on S3 only if it is still ``version`` (the ETag
        :meth:`read_state_versioned` gave, None: only if there is still none), so a commit can
        never overwrite another writer's. Returns the new version."""
        table = table.cast(s.OBJECT_STATE_SCHEMA)
        if not self.in_place:
            write_parquet_atomic(table, self.state_file)
            return None
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, **PARQUET_OPTIONS)
        return self.store.write_versioned(STATE_KEY, buffer.getvalue().to_pybytes(), version)

    def staging_area(self, run_id: str) -> StagingArea:
        """``LAKE/_staging/<run_id>``: in the lake folder, or objects of the S3 lake written with
        its KMS key (what a read task on another machine can reach)."""
        writer = self.store.writer
        if self.in_place and writer is not None:
            return StagingArea.in_lake(self.store.uri, run_id, writer.endpoint_url,
                                       writer.kms_key_id)  # fmt: skip
        return StagingArea.in_lake(self.root, run_id)
