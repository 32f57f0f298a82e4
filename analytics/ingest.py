"""Ingest a CloudTrail trail into the lake: incrementally, exactly once, on all cores.

How exactly-once holds:

* Objects are read in sorted key order and their results committed in that order, so a run
  killed at any moment has committed a prefix of what a clean run would commit.
* Events are de-duplicated on ``eventID`` within each flush and against every ``eventID``
  already in the day's partition, so rereading an object (rerun, overlapping range, the same
  events delivered under another name, a crash between data and state) adds nothing. A repeat
  is dropped only if its content is the same; an eventID reused for other content is a clash,
  quarantined with a reason rather than silently dropped.
* Data files are renamed into place before ``_state/objects.parquet`` records the objects they
  came from; the state is only an optimisation that lets the next run skip unchanged objects.

Decoding runs in worker processes (``workers``); the parent only de-duplicates and writes, and at
most ``2 × workers`` chunks are in flight, so memory stays bounded whatever the number of objects.
A worker reports every failure of an object as that object's outcome, and dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics import schema as s
from analytics.adapters.lake import (
    EVENT_PARQUET_OPTIONS,
    LocalLake,
    safe_name,
    without_partition_column,
    write_bytes_atomic,
)
from analytics.adapters.sources import ObjectFetchError, ObjectRef, Source
from analytics.cloudtrail import (
    BadRecord,
    DecodedObject,
    decode_object,
    failure_reason,
    normalise_each,
)
from analytics.decompress import DEFAULT_MAX_DECOMPRESSED, RejectedObject, too_large
from analytics.layout import Kind, Selection, classify
from analytics.quarantine import EVENT_ID_CLASH
from analytics.seen_ids import (
    CONTENT,
    CONTENT_COLUMNS,
    HOLDER,
    HOLDER_EVENT,
    KNOWN,
    SeenIds,
    content_hashes,
)

ProgressCallback = Callable[["Progress"], None]
_ROW = "__row"


@dataclass(frozen=True)
class IngestOptions:
    selection: Selection = field(default_factory=Selection)
    workers: int = os.cpu_count() or 1
    max_object_bytes: int = DEFAULT_MAX_DECOMPRESSED
    flush_events: int = 25_000
    flush_bytes: int = 256 * 1024 * 1024
    checkpoint_events: int = 1_000_000
    chunk_bytes: int = 2 * 1024 * 1024
    fetch_threads: int = 8


@dataclass
class Progress:
    objects_total: int = 0
    objects_done: int = 0
    events_done: int = 0
    bytes_done: int = 0


@dataclass
class IngestSummary:
    """What a run did; ``to_dict`` is the ``--json`` output."""

    source: str = ""
    objects_seen: int = 0
    objects_ingested: int = 0
    objects_skipped: int = 0
    objects_quarantined: int = 0
    objects_failed: int = 0
    records_quarantined: int = 0
    objects_with_notes: int = 0
    digests_skipped: int = 0
    insights_skipped: int = 0
    other_files_skipped: int = 0
    events_read: int = 0
    events_written: int = 0
    duplicate_events_dropped: int = 0
    event_id_clashes: int = 0
    events_outside_range: int = 0
    bytes_read: int = 0
    dates_written: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Outcome:
    ref: ObjectRef
    status: str  # ingested | quarantined | failed
    reason: str | None = None
    events: int = 0
    bad_records: list[BadRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)


@dataclass
class ChunkResult:
    """What decoding one chunk of objects gave: an outcome per object and their events."""

    outcomes: list[_Outcome]
    table: pa.Table | None
    bytes_read: int


def _decode_one(
    source: Source, ref: ObjectRef, max_bytes: int
) -> tuple[_Outcome, DecodedObject | None]:
    """Fetch and decode one object. Any failure of the decoder, foreseen or not, quarantines
    the object with a one-line reason: hostile input must never stop a run."""
    if ref.size > max_bytes:  # as listed: refused without fetching a byte
        return _Outcome(ref, "quarantined", too_large(max_bytes)), None
    try:
        data = source.fetch(ref, max_bytes + 1)  # one byte more tells "too large" apart
    except ObjectFetchError as exc:
        return _Outcome(ref, "failed", str(exc)), None
    except Exception as exc:  # a source's bug is not the object's fault: retried next run
        return _Outcome(ref, "failed", f"{ref.key}: cannot read ({failure_reason(exc)})"), None
    try:
        decoded = decode_object(data, ref.key, max_bytes, delivered=ref.mtime)
    except RejectedObject as exc:
        return _Outcome(ref, "quarantined", str(exc)), None
    except Exception as exc:
        return _Outcome(ref, "quarantined", failure_reason(exc)), None
    return _Outcome(ref, "ingested"), decoded


def _read_chunk(
    refs: list[ObjectRef], source: Source, max_bytes: int, fetch_threads: int
) -> ChunkResult:
    """Worker entry point: fetch and decode a chunk of objects, then normalise them together.

    Should anything unforeseen still escape for the chunk as a whole, each object is read again
    on its own, so the failure is reported per object (quarantined with its reason) and the
    chunk's good objects are kept; an exception never crosses back from a worker.
    """
    try:
        return _read_chunk_once(refs, source, max_bytes, fetch_threads)
    except Exception as exc:
        if len(refs) == 1:
            outcome = _Outcome(refs[0], "quarantined", failure_reason(exc))
            return ChunkResult([outcome], None, refs[0].size)
    results = [_read_chunk([ref], source, max_bytes, fetch_threads) for ref in refs]
    tables = [r.table for r in results if r.table is not None]
    return ChunkResult(
        [o for r in results for o in r.outcomes],
        pa.concat_tables(tables) if tables else None,
        sum(r.bytes_read for r in results),
    )


def _read_chunk_once(
    refs: list[ObjectRef], source: Source, max_bytes: int, fetch_threads: int
) -> ChunkResult:
    if fetch_threads > 1 and len(refs) > 1 and source.remote:
        with ThreadPoolExecutor(min(fetch_threads, len(refs))) as pool:
            results = list(pool.map(lambda r: _decode_one(source, r, max_bytes), refs))
    else:
        results = [_decode_one(source, r, max_bytes) for r in refs]
    decoded = [d for _, d in results if d is not None]
    table, refused = normalise_each(decoded)
    for outcome, _ in results:
        if outcome.ref.key in refused:
            outcome.status, outcome.reason = "quarantined", refused[outcome.ref.key]
    by_key = {d.source_object: d for d in decoded if d.source_object not in refused}
    if table.num_rows:
        keys_and_dates = pl.from_arrow(table.select([s.SOURCE_OBJECT, s.EVENT_DATE]))
        assert isinstance(keys_and_dates, pl.DataFrame)
        per_object = keys_and_dates.group_by(s.SOURCE_OBJECT).agg(
            pl.len().alias("events"), pl.col(s.EVENT_DATE).unique().sort().alias("dates")
        )
        counts = {row[0]: (row[1], row[2]) for row in per_object.iter_rows()}
    else:
        counts = {}
    for outcome, _ in results:
        item = by_key.get(outcome.ref.key)
        if item is None:
            continue
        outcome.events, outcome.dates = counts.get(outcome.ref.key, (0, []))
        outcome.bad_records = item.bad_records
        outcome.notes = item.notes
    outcomes = [o for o, _ in results]
    del results, decoded, by_key  # the decoded documents and records: most of the memory
    _trim_heap_if_large()
    return ChunkResult(outcomes, table if table.num_rows else None, sum(r.size for r in refs))


def _chunks(
    refs: list[ObjectRef], chunk_bytes: int, max_objects: int = 4096
) -> list[list[ObjectRef]]:
    chunks: list[list[ObjectRef]] = []
    current: list[ObjectRef] = []
    size = 0
    for ref in refs:
        current.append(ref)
        size += ref.size
        if size >= chunk_bytes or len(current) >= max_objects:
            chunks.append(current)
            current, size = [], 0
    if current:
        chunks.append(current)
    return chunks


def _init_worker(parent: int) -> None:
    _exit_with_parent(parent)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(2)
    # Decoding allocates millions of short-lived lists and structs that are never cyclic;
    # generational GC passes over them cost a quarter of the decode time.
    gc.disable()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_POLL_SECONDS = 0.2


def _exit_with_parent(parent: int) -> None:
    """Make this worker die with the process that started it.

    A worker whose parent was killed (SIGKILL, OOM killer) would otherwise finish its chunk, or
    wait forever for the next one, holding memory and a core. On Linux the kernel kills it at
    once (``PR_SET_PDEATHSIG``); everywhere, a watchdog thread exits when the parent changes.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    watchdog = threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog")
    watchdog.daemon = True
    watchdog.start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _bounded_ordered_map(
    func: Callable[[list[ObjectRef]], ChunkResult], chunks: list[list[ObjectRef]], workers: int
) -> Iterator[ChunkResult]:
    """``map`` over worker processes, in order, with at most ``2 × workers`` chunks in flight."""
    if workers <= 1 or len(chunks) <= 1:
        yield from map(func, chunks)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe beside threads
    # Each worker is one process on one core: its Polars and Arrow pools get one thread each,
    # or two workers on two cores would fight four pools' worth of threads.
    previous = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        pool = context.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),))
    finally:
        if previous is None:
            os.environ.pop("POLARS_MAX_THREADS", None)
        else:
            os.environ["POLARS_MAX_THREADS"] = previous
    with pool:
        pending: deque[Any] = deque()
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.apply_async(func, (chunk,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(func, (nxt,)))
            yield result


class _Committer:
    """Buffers decoded events and commits them to the lake: data first, then state.

    Each flush appends one sorted row group per day to an open Parquet writer (hidden, not yet
    part of the lake), so the parent holds only one small buffer at a time. A checkpoint closes
    the writers, renames their files into place, and only then records the objects they came
    from in the state; a crash before that loses nothing but work, which the rerun repeats.
    """

    def __init__(self, lake: LocalLake, selection: Selection, summary: IngestSummary) -> None:
        self.lake = lake
        self.selection = selection
        self.summary = summary
        self.run_id = (
            dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        )
        self.sequence = 0
        self.tables: list[pa.Table] = []
        self.outcomes: list[_Outcome] = []
        self.rows = 0
        self.nbytes = 0
        self.seen: dict[dt.date, SeenIds] = {}
        self.state = {row[s.OBJ_KEY]: row for row in lake.read_state().to_pylist()}
        self.dates_written: set[dt.date] = set()
        self.writers: dict[dt.date, tuple[pq.ParquetWriter, Path, Path]] = {}
        self.pending: list[_Outcome] = []
        self.uncommitted_rows = 0

    def add(self, result: ChunkResult) -> None:
        self.outcomes.extend(result.outcomes)
        if result.table is not None:
            self.tables.append(result.table)
            self.rows += result.table.num_rows
            self.nbytes += result.table.nbytes

    def _seen_ids(self, day: dt.date) -> SeenIds:
        if day not in self.seen:
            files = self.lake.partition_files(day)
            ids = pl.read_parquet(files, columns=[s.EVENT_ID]).to_series() if files else None
            self.seen[day] = SeenIds(ids, partial(_stored_details, files))
        return self.seen[day]

    def flush(self) -> None:
        """Write the buffer into the open day files (not yet visible in the lake)."""
        if self.tables:
            self._write_events(pa.concat_tables(self.tables))
        self.pending.extend(self.outcomes)
        self.uncommitted_rows += self.rows
        self.tables, self.outcomes, self.rows, self.nbytes = [], [], 0, 0

    def checkpoint(self) -> None:
        """Make everything flushed so far part of the lake, then record it in the state."""
        self.flush()
        for writer, tmp, final in self.writers.values():
            writer.close()
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        self.writers = {}
        self.outcomes = self.pending
        self._write_quarantine()
        self._write_state()
        self.outcomes, self.pending, self.uncommitted_rows = [], [], 0

    def _writer(self, day: dt.date) -> pq.ParquetWriter:
        if day not in self.writers:
            self.sequence += 1
            name = f"part-{self.run_id}-{self.sequence:05d}.parquet"
            final = self.lake.partition_dir(day) / name
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".tmp-{uuid.uuid4().hex}-{name}.partial")
            writer = pq.ParquetWriter(tmp, s.EVENT_FILE_SCHEMA, **EVENT_PARQUET_OPTIONS)
            self.writers[day] = (writer, tmp, final)
        return self.writers[day][0]

    def abandon(self) -> None:
        """After a failure: close and delete the files that never became part of the lake."""
        for writer, tmp, _ in self.writers.values():
            with contextlib.suppress(Exception):
                writer.close()
            tmp.unlink(missing_ok=True)
        self.writers = {}

    def _write_events(self, table: pa.Table) -> None:
        """Filter, de-duplicate, sort and write one buffer of events.

        Decisions are taken on the small key columns with Polars and end as one list of row
        numbers per day, in time order; the wide Arrow table is gathered once per day by those
        numbers (after one concatenation), so a flush costs about two copies of the buffer.

        A repeated eventID is dropped (and counted) when its content (see
        :data:`~analytics.seen_ids.CONTENT_COLUMNS`) equals that of the event already holding
        the ID, as CloudTrail's redeliveries do; with different content it is an *eventID clash*
        (corruption, or someone hiding an event under a known ID) and the newcomer is
        quarantined as a record of its object, naming both objects and event names.
        """
        self.summary.events_read += table.num_rows
        table = table.combine_chunks()  # gathering rows from one chunk is 4× faster than many
        keys = pl.from_arrow(
            table.select([s.EVENT_ID, s.EVENT_DATE, s.EVENT_TIME, s.SOURCE_OBJECT, s.EVENT_NAME])
        )
        assert isinstance(keys, pl.DataFrame)
        first = pl.col(s.EVENT_ID).is_first_distinct()
        other_content = pl.col(CONTENT) != pl.col(CONTENT).first().over(s.EVENT_ID)
        keys = keys.with_columns(content_hashes(table)).with_row_index(_ROW)
        keys = keys.with_columns(
            first.alias(_FIRST),
            (~first & other_content).alias(_CLASH),
            pl.col(s.SOURCE_OBJECT).first().over(s.EVENT_ID).alias(HOLDER),
            pl.col(s.EVENT_NAME).first().over(s.EVENT_ID).alias(HOLDER_EVENT),
        )
        keep = pl.col(_FIRST)
        if self.selection.start is not None or self.selection.end is not None:
            in_range = self._in_range(pl.col(s.EVENT_DATE))
            outside = keys.select((~in_range).sum()).item()
            self.summary.events_outside_range += int(outside)
            keep = keep & in_range
        for day in sorted(keys.get_column(s.EVENT_DATE).unique().to_list()):
            if not self.selection.covers(day):
                continue
            seen = self._seen_ids(day)
            on_day = pl.col(s.EVENT_DATE) == day
            clashes = [keys.filter(on_day & pl.col(_CLASH))]
            wanted = keys.filter(keep & on_day)
            known = seen.lookup(wanted.get_column(s.EVENT_ID))
            is_known = known.get_column(KNOWN)
            differs = (known.get_column(CONTENT) != wanted.get_column(CONTENT)).fill_null(False)
            clashes.append(
                wanted.drop(HOLDER, HOLDER_EVENT)
                .hstack(known.select(HOLDER, HOLDER_EVENT))
                .filter(is_known & differs)
            )
            fresh = wanted.filter(~is_known)
            clashed = pl.concat(clashes, how="diagonal_relaxed")
            self._quarantine_clashes(table, clashed)
            candidates = int(keys.select(on_day.sum()).item())
            self.summary.duplicate_events_dropped += candidates - fresh.height - clashed.height
            if fresh.is_empty():
                continue
            rows = fresh.sort(s.EVENT_TIME, maintain_order=True).get_column(_ROW)
            ordered = table.take(rows.to_arrow())
            self._writer(day).write_table(without_partition_column(ordered.cast(s.EVENT_SCHEMA)))
            seen.add(
                fresh.get_column(s.EVENT_ID),
                fresh.select(
                    pl.col(CONTENT),
                    pl.col(s.SOURCE_OBJECT).cast(pl.Categorical).alias(HOLDER),
                    pl.col(s.EVENT_NAME).cast(pl.Categorical).alias(HOLDER_EVENT),
                ),
            )
            self.summary.events_written += ordered.num_rows
            self.dates_written.add(day)
        _trim_heap_if_large()

    def _quarantine_clashes(self, table: pa.Table, clashed: pl.DataFrame) -> None:
        """Quarantine each clashing newcomer as a record of its object, with a reason naming
        the object (and event name) that holds the ID and its own."""
        if clashed.is_empty():
            return
        outcomes = {o.ref.key: o for o in self.outcomes}
        for row in clashed.sort(_ROW).iter_rows(named=True):
            reason = (
                f"{EVENT_ID_CLASH}: {_quoted(row[s.EVENT_ID])} is already held by "
                f"{_quoted(row[HOLDER_EVENT])} from {_quoted(row[HOLDER])}; this "
                f"{_quoted(row[s.EVENT_NAME])} from {_quoted(row[s.SOURCE_OBJECT])} has "
                "different content"
            )
            stored = table.slice(row[_ROW], 1).to_pylist()[0]
            text = orjson.dumps(stored, default=str).decode()[:_MAX_CLASH_TEXT]
            self.summary.event_id_clashes += 1
            self.summary.clashes.append(reason)
            outcome = outcomes.get(row[s.SOURCE_OBJECT])
            if outcome is not None:
                outcome.bad_records.append(BadRecord(None, reason, text, stored.get(s.EVENT_DATE)))

    def _in_range(self, column: pl.Expr) -> pl.Expr:
        condition = pl.lit(True)
        if self.selection.start is not None:
            condition = condition & (column >= self.selection.start)
        if self.selection.end is not None:
            condition = condition & (column <= self.selection.end)
        return condition

    def _write_quarantine(self) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        for outcome in self.outcomes:
            name = safe_name(outcome.ref.key)
            if outcome.status == "quarantined":
                record = {
                    "source_object": outcome.ref.key,
                    "reason": outcome.reason,
                    "size": outcome.ref.size,
                    "etag": outcome.ref.etag,
                    "quarantined_at": now,
                }
                target = self.lake.quarantine_dir / "objects" / f"{name}.json"
                write_bytes_atomic(orjson.dumps(record, option=orjson.OPT_INDENT_2), target)
            if outcome.bad_records:
                lines = b"".join(
                    orjson.dumps(
                        {
                            "source_object": outcome.ref.key,
                            "index": bad.index,
                            "reason": bad.reason,
                            "record": bad.raw,
                            **(
                                {"event_date": bad.event_date.isoformat()} if bad.event_date else {}
                            ),
                        }
                    )
                    + b"\n"
                    for bad in outcome.bad_records
                )
                write_bytes_atomic(lines, self.lake.quarantine_dir / "records" / f"{name}.jsonl")

    def _write_state(self) -> None:
        now = dt.datetime.now(dt.UTC)
        changed = False
        for outcome in self.outcomes:
            if outcome.status == "failed":
                continue
            previous = self.state.get(outcome.ref.key)
            same_object = previous is not None and previous[s.OBJ_ETAG] == outcome.ref.etag
            written = (
                set(previous[s.OBJ_DATES_WRITTEN] or []) if same_object and previous else set()
            )
            written.update(d for d in outcome.dates if self.selection.covers(d))
            self.state[outcome.ref.key] = {
                s.OBJ_KEY: outcome.ref.key,
                s.OBJ_ETAG: outcome.ref.etag,
                s.OBJ_SIZE: outcome.ref.size,
                s.OBJ_MTIME: outcome.ref.mtime,
                s.OBJ_STATUS: (
                    s.STATUS_QUARANTINED if outcome.status == "quarantined" else s.STATUS_INGESTED
                ),
                s.OBJ_EVENTS: outcome.events,
                s.OBJ_RECORDS_QUARANTINED: len(outcome.bad_records),
                s.OBJ_REASON: outcome.reason,
                s.OBJ_NOTE: "; ".join(outcome.notes) or None,
                s.OBJ_DATES_SEEN: outcome.dates,
                s.OBJ_DATES_WRITTEN: sorted(written),
                s.OBJ_INGESTED_AT: now,
            }
            changed = True
        if changed:
            rows = [self.state[key] for key in sorted(self.state)]
            self.lake.write_state(pa.Table.from_pylist(rows, schema=s.OBJECT_STATE_SCHEMA))


_RESIDENT_BOUND = 320 * 1024 * 1024
_FIRST = "__first"
_CLASH = "__clash"
_MAX_CLASH_TEXT = 64 * 1024


def _quoted(value: object) -> str:
    """An attacker-controlled value, quoted and cut, so a reason stays one readable line."""
    return repr(str(value)[:200])


def _stored_details(files: list[Path]) -> pl.DataFrame:
    """Content hash and holder of every event already in a day's files (for clash checks)."""
    columns = list(dict.fromkeys([s.EVENT_ID, *CONTENT_COLUMNS, s.SOURCE_OBJECT, s.EVENT_NAME]))
    frame = pl.read_parquet(files, columns=columns)
    return frame.select(
        pl.col(s.EVENT_ID),
        content_hashes(frame),
        pl.col(s.SOURCE_OBJECT).alias(HOLDER),
        pl.col(s.EVENT_NAME).alias(HOLDER_EVENT),
    )


def _trim_heap_if_large() -> None:
    """Give freed memory back to the OS, but only once this process holds more than a bound.

    The next chunk or flush reuses the freed heap; returning it after every one only to fault
    it back in cost a tenth of the ingest, while the bound keeps one unusually large chunk from
    pinning its memory for the rest of the run.
    """
    if _resident_bytes() > _RESIDENT_BOUND:
        pa.default_memory_pool().release_unused()
        _trim_heap()


def _resident_bytes() -> int:
    """This process's resident memory now (Linux), or a huge number where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 1 << 62


def _trim_heap() -> None:
    """Give freed heap back to the OS (glibc keeps it otherwise: unpickled results are large)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to do
        return
    libc.malloc_trim(0)


def needs_reading(ref: ObjectRef, previous: dict[str, Any] | None, selection: Selection) -> bool:
    """Whether an object must be (re)read: new, changed, or holding dates a run left out."""
    if previous is None or previous[s.OBJ_ETAG] != ref.etag:
        return True
    if previous[s.OBJ_STATUS] == s.STATUS_QUARANTINED:
        return False
    written = set(previous[s.OBJ_DATES_WRITTEN] or [])
    wanted = {d for d in previous[s.OBJ_DATES_SEEN] or [] if selection.covers(d)}
    return not wanted <= written


class SkipTally(Protocol):
    """Where :func:`select_log_objects` counts what it skips (an :class:`IngestSummary`, say)."""

    digests_skipped: int
    insights_skipped: int
    other_files_skipped: int


def select_log_objects(
    refs: Iterable[ObjectRef], selection: Selection, tally: SkipTally
) -> list[ObjectRef]:
    """The CloudTrail log files among ``refs`` that ``selection`` wants, sorted by key; digests,
    Insights files and anything else are counted in ``tally`` and left out."""
    wanted: list[ObjectRef] = []
    for ref in refs:
        kind, name = classify(ref.key)
        if kind is Kind.DIGEST:
            tally.digests_skipped += 1
        elif kind is Kind.INSIGHT:
            tally.insights_skipped += 1
        elif kind is Kind.OTHER or name is None:
            tally.other_files_skipped += 1
        elif selection.wants(name):
            wanted.append(ref)
    return sorted(wanted, key=lambda r: r.key)


def list_log_objects(
    source: Source, selection: Selection, summary: IngestSummary
) -> list[ObjectRef]:
    """The CloudTrail log files of ``source`` that ``selection`` wants, sorted by key."""
    return select_log_objects(source.list_objects(selection.delivery_days()), selection, summary)


def read_objects(
    source: Source, refs: Sequence[ObjectRef], options: IngestOptions
) -> Iterator[ChunkResult]:
    """Fetch and decode ``refs`` in this process, chunk by chunk, in key order; no lake involved.

    The nightly flow's partition tasks use this, so they can run wherever the trail is readable.
    """
    for chunk in _chunks(list(refs), options.chunk_bytes):
        yield _read_chunk(chunk, source, options.max_object_bytes, options.fetch_threads)


class IngestCommit:
    """The single writer of one ingest: fed decoded chunks in key order, committed when closed.

    It buffers events, flushes them to hidden day files as the buffer fills (by events or by
    bytes), makes them part of the lake at each checkpoint and at :meth:`close`, and records
    their objects in the state only after that. :func:`ingest` and the nightly flow both write
    through it, so they produce the same files and state. The caller holds the lake lock.
    """

    def __init__(self, lake: LocalLake, options: IngestOptions, summary: IngestSummary) -> None:
        lake.root.mkdir(parents=True, exist_ok=True)
        lake.remove_stale_temporaries()
        self.options = options
        self.summary = summary
        self._committer = _Committer(lake, options.selection, summary)

    def previous(self, key: str) -> dict[str, Any] | None:
        """The state row of object ``key`` from earlier runs, if any."""
        return self._committer.state.get(key)

    def add(self, chunk: ChunkResult) -> None:
        committer, options = self._committer, self.options
        _tally(self.summary, chunk.outcomes)
        self.summary.bytes_read += chunk.bytes_read
        committer.add(chunk)
        if committer.rows >= options.flush_events or committer.nbytes >= options.flush_bytes:
            committer.flush()
        if committer.uncommitted_rows >= options.checkpoint_events:
            committer.checkpoint()

    def close(self) -> IngestSummary:
        """Make everything added part of the lake, then record it in the state."""
        self._committer.checkpoint()
        self.summary.dates_written = [d.isoformat() for d in sorted(self._committer.dates_written)]
        return self.summary

    def abandon(self) -> None:
        """After a failure: drop the files that never became part of the lake."""
        self._committer.abandon()


def ingest(
    source: Source,
    lake: LocalLake,
    options: IngestOptions = IngestOptions(),
    progress: ProgressCallback | None = None,
) -> IngestSummary:
    """Read every wanted, not-yet-ingested object of ``source`` into ``lake``."""
    started = time.perf_counter()
    summary = IngestSummary(source=source.describe())
    commit = IngestCommit(lake, options, summary)
    candidates = list_log_objects(source, options.selection, summary)
    summary.objects_seen = len(candidates)
    to_read = [
        ref for ref in candidates if needs_reading(ref, commit.previous(ref.key), options.selection)
    ]
    summary.objects_skipped = len(candidates) - len(to_read)
    state = Progress(objects_total=len(to_read))
    if progress:
        progress(state)
    read_chunk = partial(
        _read_chunk,
        source=source,
        max_bytes=options.max_object_bytes,
        fetch_threads=options.fetch_threads,
    )
    chunks = _chunks(to_read, options.chunk_bytes)
    try:
        for result in _bounded_ordered_map(read_chunk, chunks, options.workers):
            commit.add(result)
            state.objects_done += len(result.outcomes)
            state.events_done += result.table.num_rows if result.table is not None else 0
            state.bytes_done += result.bytes_read
            if progress:
                progress(state)
        commit.close()
    except BaseException:
        commit.abandon()
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _tally(summary: IngestSummary, outcomes: Iterable[_Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status == "ingested":
            summary.objects_ingested += 1
            summary.records_quarantined += len(outcome.bad_records)
            if outcome.notes:
                summary.objects_with_notes += 1
        elif outcome.status == "quarantined":
            summary.objects_quarantined += 1
            summary.quarantined.append(f"{outcome.ref.key}: {outcome.reason}")
        else:
            summary.objects_failed += 1
            summary.failed.append(outcome.reason or outcome.ref.key)
