"""Ingest a CloudTrail trail into the lake: incrementally, exactly once, on any number of workers.

One driver, three steps, each a function taking and returning plain typed values, so the CLI
(:func:`ingest`, a pool of threads) and the nightly flow (Prefect tasks on threads or Dask workers)
are thin faces of the same code:

* :func:`plan` — the partitions to read: one per (account, region, delivery day) folder, large
  ones cut into pieces; objects already in the lake are left out (or, for an S3 folder the task
  lists itself, the state rows it needs to leave them out).
* :func:`read_partition` — fetch, gunzip, decode and normalise one partition; bad objects and
  records become quarantine outcomes. It writes its events to the lake's staging area
  (:mod:`analytics.ingest.staging`), one file per event day named after the partition, and returns a
  small :class:`StagedPartition`: the files, per-day counts, every object's outcome. A worker
  therefore ships no events back, and needs no disk shared with the committer.
* :func:`commit` (through :class:`IngestCommit`) — per event day, :func:`merge_day` de-duplicates
  the staged files on ``eventID`` against the day's partition and across partitions (first copy
  in key order wins) into one hidden file; then every day's file is renamed into place, the
  quarantine is written, the objects are recorded in ``_state/`` — last — and the staged files
  are removed.

How exactly-once holds:

* Partitions are in key order and merged in that order, so the rows kept are those of reading
  the objects one by one in key order, whoever read them and however often.
* A retried or re-run read overwrites its own staged files (deterministic names); only the
  files of the attempt whose message reached the commit are merged.
* Data files are renamed into place before ``_state/objects.parquet`` records the objects they
  came from; a run killed in between reads the objects again and the merge drops every event
  already in the lake. A repeat is dropped only if its content is the same; an eventID reused
  for other content is a clash, quarantined with a reason rather than silently dropped.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.adapters.lake import (
    EVENT_PARQUET_OPTIONS,
    LocalLake,
    safe_name,
    without_partition_column,
)
from analytics.adapters.lake_fs import LakeFile
from analytics.adapters.sources import ObjectFetchError, ObjectRef, Source
from analytics.ingest.cloudtrail import (
    BadRecord,
    DecodedObject,
    decode_object,
    failure_reason,
    load_scanner_early,
    normalise_each,
)
from analytics.ingest.decompress import DEFAULT_MAX_DECOMPRESSED, RejectedObject, too_large
from analytics.ingest.layout import Kind, LogName, Selection, classify, day_folder
from analytics.ingest.quarantine import EVENT_ID_CLASH
from analytics.ingest.seen_ids import (
    CONTENT,
    CONTENT_COLUMNS,
    HOLDER,
    HOLDER_EVENT,
    ID_HASH,
    KNOWN,
    SeenIds,
    content_hashes,
    merge_hashes,
    with_merge_hashes,
)
from analytics.ingest.staging import STAGED_SUFFIX, StagingArea
from analytics.lake import schema as s

ProgressCallback = Callable[["Progress"], None]
_ROW = "__row"
_T = TypeVar("_T")
_R = TypeVar("_R")

PIECE_BYTES = 8 * 1024 * 1024
"""Compressed bytes one read task takes from a pre-listed partition (~40k events)."""


@dataclass(frozen=True)
class IngestOptions:
    selection: Selection = field(default_factory=Selection)
    workers: int = os.cpu_count() or 1
    max_object_bytes: int = DEFAULT_MAX_DECOMPRESSED
    flush_events: int = 25_000
    """Fresh events a day's merge buffers before writing them as one row group."""
    flush_bytes: int = 256 * 1024 * 1024
    checkpoint_events: int = 1_000_000
    """Staged events after which the CLI commits what it has read (a file per day each time)."""
    chunk_bytes: int = 2 * 1024 * 1024
    """Compressed bytes a read task decodes and normalises at once."""
    piece_bytes: int = PIECE_BYTES
    fetch_threads: int = 8


@dataclass
class Progress:
    objects_total: int = 0  # 0 when unknown: the read tasks list the S3 folders themselves
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
    objects_scanned: int = 0
    """Objects read by the compiled scanner (:mod:`analytics.ingest.scan`); the others ingested were
    read by the reference decoder."""
    scanner_fallbacks: dict[str, int] = field(default_factory=dict)
    """Ingested objects the scanner left to the reference decoder, by reason."""
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
class ObjectOutcome:
    """What became of one source object: read, quarantined (with why) or failed to fetch."""

    ref: ObjectRef
    status: str  # ingested | quarantined | failed
    reason: str | None = None
    events: int = 0
    bad_records: list[BadRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)
    scanned: bool = False
    """Read by the compiled scanner (False: by the reference decoder)."""
    scan_fallback: str | None = None
    """Why the scanner left the object to the reference decoder, if it did."""


@dataclass
class ChunkResult:
    """What decoding one chunk of objects gave: an outcome per object and their events."""

    outcomes: list[ObjectOutcome]
    table: pa.Table | None
    bytes_read: int


def _decode_one(
    source: Source, ref: ObjectRef, max_bytes: int
) -> tuple[ObjectOutcome, DecodedObject | None]:
    """Fetch and decode one object. Any failure of the decoder, foreseen or not, quarantines
    the object with a one-line reason: hostile input must never stop a run."""
    if ref.size > max_bytes:  # as listed: refused without fetching a byte
        return ObjectOutcome(ref, "quarantined", too_large(max_bytes)), None
    try:
        data = source.fetch(ref, max_bytes + 1)  # one byte more tells "too large" apart
    except ObjectFetchError as exc:
        return ObjectOutcome(ref, "failed", str(exc)), None
    except Exception as exc:  # a source's bug is not the object's fault: retried next run
        return ObjectOutcome(ref, "failed", f"{ref.key}: cannot read ({failure_reason(exc)})"), None
    try:
        decoded = decode_object(data, ref.key, max_bytes, delivered=ref.mtime)
    except RejectedObject as exc:
        return ObjectOutcome(ref, "quarantined", str(exc)), None
    except Exception as exc:
        return ObjectOutcome(ref, "quarantined", failure_reason(exc)), None
    return ObjectOutcome(ref, "ingested"), decoded


def _read_chunk(
    refs: list[ObjectRef], source: Source, max_bytes: int, fetch_threads: int
) -> ChunkResult:
    """A read task's step: fetch and decode a chunk of objects, then normalise them together.

    Should anything unforeseen still escape for the chunk as a whole, each object is read again
    on its own, so the failure is reported per object (quarantined with its reason) and the
    chunk's good objects are kept; an exception never ends a read task.
    """
    try:
        return _read_chunk_once(refs, source, max_bytes, fetch_threads)
    except Exception as exc:
        if len(refs) == 1:
            outcome = ObjectOutcome(refs[0], "quarantined", failure_reason(exc))
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
        outcome.scanned = item.scanned is not None
        outcome.scan_fallback = item.scan_fallback
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


def _bounded_ordered_map(
    func: Callable[[_T], _R], items: Sequence[_T], workers: int
) -> Iterator[_R]:
    """``map`` over ``workers`` threads, in order, with at most ``workers + 1`` items in flight
    (done or not): each thread has its next item while the merge takes the oldest result, and
    the memory of the results waiting stays bounded (a wider window bought no speed here).

    The read tasks spend their time in code that releases the GIL (gunzip, the compiled
    scanner, Polars and Arrow kernels), so threads of one process read in parallel without a
    second interpreter, its imports or copies of their results between processes."""
    if workers <= 1 or len(items) <= 1:
        yield from map(func, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="keytrail-read")
    try:
        pending: deque[Any] = deque()
        todo = iter(items)
        for item in todo:
            pending.append(pool.submit(func, item))
            if len(pending) > workers:
                break
        while pending:
            result = pending.popleft().result()
            for nxt in todo:
                pending.append(pool.submit(func, nxt))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_RESIDENT_BOUND = 320 * 1024 * 1024
_FIRST = "__first"
_CLASH = "__clash"
_MAX_CLASH_TEXT = 64 * 1024


def _quoted(value: object) -> str:
    """An attacker-controlled value, quoted and cut, so a reason stays one readable line."""
    return repr(str(value)[:200])


def _stored_details(lake: LocalLake, files: list[LakeFile]) -> pl.DataFrame:
    """Content hash and holder of every event already in a day's files (for clash checks)."""
    columns = list(dict.fromkeys([s.EVENT_ID, *CONTENT_COLUMNS, s.SOURCE_OBJECT, s.EVENT_NAME]))
    frame = lake.store.read_frame(files, columns)
    return frame.select(
        pl.col(s.EVENT_ID),
        content_hashes(frame),
        pl.col(s.SOURCE_OBJECT).alias(HOLDER),
        pl.col(s.EVENT_NAME).alias(HOLDER_EVENT),
    )


def _trim_heap_if_large() -> None:
    """Give freed memory back to the OS, but only when this process has grown well past both a
    bound and what it held after the last trim.

    The next chunk or flush reuses the freed heap; returning it after every one only to fault
    it back in cost a tenth of the ingest (more with several read threads in one process, whose
    steady working set is above the bound), while trimming on growth keeps one unusually large
    chunk from pinning its memory for the rest of the run.
    """
    resident = _resident_bytes()
    if resident > max(_RESIDENT_BOUND, _TRIMMED[0] * _REGROWTH):
        pa.default_memory_pool().release_unused()
        _trim_heap()
        _TRIMMED[0] = _resident_bytes()


_TRIMMED = [0]
"""Resident bytes right after this process's last trim."""
_REGROWTH = 1.5


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


def read_objects(
    source: Source, refs: Sequence[ObjectRef], options: IngestOptions
) -> Iterator[ChunkResult]:
    """Fetch and decode ``refs`` in this process, chunk by chunk, in key order; no lake involved
    (:func:`read_partition` stages what this yields)."""
    for chunk in _chunks(list(refs), options.chunk_bytes):
        yield _read_chunk(chunk, source, options.max_object_bytes, options.fetch_threads)


# --- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """One (account, region, delivery day) slice of a trail: the unit of the ingest fan-out.

    Either ``prefix`` is set (an S3 folder the task lists itself) or ``refs`` holds the objects
    to read, already listed, filtered and in key order.
    """

    account: str
    region: str
    delivered: dt.date
    prefix: str | None = None
    refs: tuple[ObjectRef, ...] = ()
    piece: int = 0  # 1, 2, … when a large partition is read by several tasks
    index: int = 0  # place in the plan: several runs of one folder stay apart
    folders: int = 1
    """Runs of the plan this task reads: more than one when :func:`batched` joined small ones
    (account, region and day are then the first run's)."""

    @property
    def name(self) -> str:
        name = f"{self.account}/{self.region}/{self.delivered.isoformat()}"
        if self.folders > 1:
            name = f"{name} and {self.folders - 1} more"
        return f"{name}#{self.piece}" if self.piece else name

    @property
    def stem(self) -> str:
        """The partition's staged-file folder: from its place and name only (account and region
        are validated digits and ``[a-z0-9-]``), so every attempt of its task uses the same."""
        stem = f"{self.index:06d}-{self.account}-{self.region}-{self.delivered.isoformat()}"
        if self.folders > 1:
            stem = f"{stem}-and-{self.folders - 1}"
        return f"{stem}-{self.piece:04d}" if self.piece else stem


@dataclass
class ListingCounts:
    """What a listing found, in :class:`IngestSummary`'s terms."""

    objects_seen: int = 0
    objects_skipped: int = 0
    digests_skipped: int = 0
    insights_skipped: int = 0
    other_files_skipped: int = 0

    def add_to(self, summary: IngestSummary) -> None:
        summary.objects_seen += self.objects_seen
        summary.objects_skipped += self.objects_skipped
        summary.digests_skipped += self.digests_skipped
        summary.insights_skipped += self.insights_skipped
        summary.other_files_skipped += self.other_files_skipped


@dataclass
class IngestPlan:
    """What a run reads: partitions in key order, and what the listing behind them found."""

    run_id: str
    partitions: list[Partition]
    counts: ListingCounts
    # Lake state rows of the objects under each S3 folder partition, so its task can tell new
    # objects from ingested ones without reading the lake.
    known: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def known_for(self, partition: Partition) -> dict[str, dict[str, Any]]:
        return self.known.get(partition.prefix or "", {})

    @property
    def objects(self) -> int:
        """Objects already listed (those of S3 folder partitions are listed by their tasks)."""
        return sum(len(p.refs) for p in self.partitions)


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def partitions_of(refs: Sequence[ObjectRef], piece_bytes: int = PIECE_BYTES) -> list[Partition]:
    """Cut key-ordered refs into runs of one (account, region, delivery day), and a run larger
    than ``piece_bytes`` (compressed) into pieces, each a task of its own.

    Runs rather than groups: a tree whose keys interleave partitions (a flat folder sorted by
    name does not, the native layout does not, but an odd one might) still commits in key
    order. Pieces: one busy account-region can hold most of an organisation's events, and as
    a single task it would leave every other worker idle while it is decoded.
    """
    runs: list[tuple[LogName, list[ObjectRef]]] = []
    for ref in refs:
        _, name = classify(ref.key)
        if name is None:
            continue
        if runs and runs[-1][0] == name:
            runs[-1][1].append(ref)
        else:
            runs.append((name, [ref]))
    partitions: list[Partition] = []
    for name, run in runs:
        pieces: list[list[ObjectRef]] = [[]]
        size = 0
        for ref in run:
            if size >= piece_bytes:
                pieces.append([])
                size = 0
            pieces[-1].append(ref)
            size += ref.size
        numbered = len(pieces) > 1
        for number, piece in enumerate(pieces, start=1):
            partitions.append(
                Partition(
                    name.account,
                    name.region,
                    name.delivered,
                    refs=tuple(piece),
                    piece=number if numbered else 0,
                    index=len(partitions),
                )
            )
    return partitions


def batched(partitions: Sequence[Partition], batch_bytes: int) -> list[Partition]:
    """Consecutive small partitions of objects already listed, joined into tasks of up to
    ``batch_bytes`` (compressed), still in plan order; the others as they are, renumbered.

    A real trail is mostly small folders (one account and region on a quiet day holds a few
    hundred kilobytes), and each task pays a fixed cost however few events it reads: decoding its
    objects in one batch, normalising them in one pass, one staged table per day and one merge
    step. Joining neighbours keeps key order, so the events kept are the same.
    """
    runs: list[list[Partition]] = []
    held = -1  # compressed bytes of the last run, if it may take more small partitions; else -1
    for part in partitions:
        part_size = sum(ref.size for ref in part.refs)
        small = part.prefix is None and not part.piece and part_size < batch_bytes
        if small and held >= 0 and held + part_size <= batch_bytes:
            runs[-1].append(part)
            held += part_size
        else:
            runs.append([part])
            held = part_size if small else -1
    return [
        replace(
            run[0],
            refs=tuple(ref for part in run for ref in part.refs),
            index=index,
            folders=len(run),
        )
        for index, run in enumerate(runs)
    ]


def _state_by_folder(state: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by_folder: dict[str, dict[str, dict[str, Any]]] = {}
    for key, row in state.items():
        by_folder.setdefault(key.rsplit("/", 1)[0] + "/", {})[key] = row
    return by_folder


def plan(
    source: Source, lake: LocalLake, selection: Selection, piece_bytes: int = PIECE_BYTES
) -> IngestPlan:
    """Find the partitions to read and, where the listing is cheap, the objects in them.

    An S3 trail in the native layout is planned from its folder names (the listing of each
    folder is left to its task: for a large organisation it is itself thousands of calls); a
    local tree, or a bucket in another layout, is listed once here and cut into partitions.
    """
    state = {row[s.OBJ_KEY]: row for row in lake.read_state().to_pylist()}
    days = selection.delivery_days()
    folders = source.day_prefixes(days) if days is not None else None
    if folders is not None:
        by_folder = _state_by_folder(state)
        partitions: list[Partition] = []
        known = {}
        for folder in sorted(folders):
            parsed = day_folder(folder)
            if parsed is None or not selection.wants(parsed):
                continue
            partitions.append(Partition(parsed.account, parsed.region, parsed.delivered,
                                        prefix=folder, index=len(partitions)))  # fmt: skip
            known[folder] = by_folder.get(source.folder_key(folder), {})
        return IngestPlan(new_run_id(), partitions, ListingCounts(), known)
    listing = ListingCounts()
    refs = select_log_objects(source.list_objects(days), selection, listing)
    pending = [ref for ref in refs if needs_reading(ref, state.get(ref.key), selection)]
    listing.objects_seen = len(refs)
    listing.objects_skipped = len(refs) - len(pending)
    return IngestPlan(new_run_id(), partitions_of(pending, piece_bytes), listing)


# --- read ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedFile:
    """Events of one partition falling on one day, staged in the lake (``path``)."""

    day: dt.date
    path: str
    events: int


@dataclass
class StagedPartition:
    """The message a read task returns: small, whatever the partition's size."""

    partition: Partition
    files: list[StagedFile]
    outcomes: list[ObjectOutcome]
    counts: ListingCounts
    events_read: int = 0
    events_outside_range: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def events_staged(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def failed(self) -> list[str]:
        """Why objects could not be fetched (the task's caller decides whether that fails it)."""
        return [o.reason or o.ref.key for o in self.outcomes if o.status == "failed"]


class _CollectorPause:
    """The cyclic collector paused while any thread of this process is decoding.

    Decoding allocates millions of short-lived, acyclic objects; the collector's passes over
    them cost about a quarter of the decode time (reference counting still frees them). The
    collector is one per process, so read tasks on threads count their pauses: it is switched
    off by the first and back (as it was) by the last, never by one thread while another is
    still decoding.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if not self.depth:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if not self.depth and self.was_enabled:
                    gc.enable()


_gc_paused = _CollectorPause()


def read_partition(
    source: Source,
    partition: Partition,
    options: IngestOptions,
    known: dict[str, dict[str, Any]],
    staging: StagingArea,
) -> StagedPartition:
    """List (an S3 folder), fetch, decode and normalise one partition; stage its events.

    Events are kept by their own day when the selection covers it (the others are counted as
    outside the range) and written to ``staging`` as one file per day, named after the
    partition. An object that cannot be fetched is a ``failed`` outcome, not an exception.
    """
    started = time.perf_counter()
    counts = ListingCounts()
    selection = options.selection
    if partition.prefix is not None:
        wanted = select_log_objects(source.list_folder(partition.prefix), selection, counts)
        refs = [r for r in wanted if needs_reading(r, known.get(r.key), selection)]
        counts.objects_seen = len(wanted)
        counts.objects_skipped = len(wanted) - len(refs)
    else:
        refs = list(partition.refs)
    outcomes: list[ObjectOutcome] = []
    by_day: dict[dt.date, list[pa.Table]] = {}
    events_read = outside = bytes_read = 0
    with _gc_paused():
        for chunk in read_objects(source, refs, options):
            outcomes.extend(chunk.outcomes)
            bytes_read += chunk.bytes_read
            if chunk.table is None:
                continue
            events_read += chunk.table.num_rows
            days = pl.Series(chunk.table.column(s.EVENT_DATE))
            distinct = days.unique().sort().to_list()
            for day in distinct:
                if not selection.covers(day):
                    outside += int((days == day).sum())
                    continue
                # The usual chunk holds one day: kept as it is, without a filtered copy.
                if len(distinct) == 1:
                    by_day.setdefault(day, []).append(chunk.table)
                else:
                    by_day.setdefault(day, []).append(chunk.table.filter((days == day).to_arrow()))
    files = []
    for day in sorted(by_day):
        table = pa.concat_tables(by_day.pop(day))
        if staging.memory:  # merged in this process: hashed here, in parallel, not by the merge
            table = with_merge_hashes(table)
        where = staging.write_table(f"{partition.stem}/{day.isoformat()}{STAGED_SUFFIX}", table)
        files.append(StagedFile(day, where, table.num_rows))
    return StagedPartition(partition, files, outcomes, counts, events_read, outside, bytes_read,
                           round(time.perf_counter() - started, 3))  # fmt: skip


# --- commit -------------------------------------------------------------------------------------


@dataclass
class DayMerge:
    """A day's merge: in a lake folder, a hidden file of the day's partition, not yet in the
    lake (``hidden``, renamed to ``final`` by the commit); in an S3 lake, one object put whole
    under a name of its own (``key``), which ``_state/`` does not yet account for."""

    day: dt.date
    hidden: Path | None
    final: Path | None
    key: str | None = None
    candidates: int = 0
    written: int = 0
    clashes: list[tuple[str, BadRecord]] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.candidates - self.written - len(self.clashes)


_WRITE_THREADS: list[ThreadPoolExecutor] = []
_WRITE_THREADS_LOCK = threading.Lock()


def _write_threads() -> ThreadPoolExecutor:
    """The process's threads that encode row groups, shared by every day merge in it: one per
    core (at most four), not one per open day, so a run over many days does not start a thread
    (and a malloc arena holding freed memory) per day."""
    with _WRITE_THREADS_LOCK:
        if not _WRITE_THREADS:
            threads = max(1, min(4, os.cpu_count() or 1))
            _WRITE_THREADS.append(ThreadPoolExecutor(threads, thread_name_prefix="keytrail-write"))
        return _WRITE_THREADS[0]


class _RowGroupWriter:
    """Writes a day file's row groups on the process's write threads, in order, while the merge
    goes on.

    Encoding and compressing Parquet is half of a merge's time and releases the GIL, so the
    merge de-duplicates the next staged tables meanwhile. One row group of a file is written at
    a time (a ``ParquetWriter`` is not for two threads at once): handing over the next waits for
    the previous, which also bounds the memory waiting. A failed write is raised by the next
    :meth:`write` or by :meth:`close`.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.pending: Future[None] | None = None

    def write(self, tables: list[pa.Table]) -> None:
        self._wait()
        self.pending = _write_threads().submit(self._write, tables)

    def _write(self, tables: list[pa.Table]) -> None:
        # event_date is the partition folder's name, not a column of the file.
        events = pa.concat_tables(tables).cast(s.EVENT_SCHEMA)
        self.writer.write_table(without_partition_column(events))

    def _wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Write what is pending and close the file."""
        self._wait()
        self.writer.close()

    def abandon(self) -> None:
        """Stop without raising: drop a write not begun, let a running one end, close the file."""
        pending, self.pending = self.pending, None
        if pending is not None and not pending.cancel():
            with contextlib.suppress(Exception):
                pending.result()
        with contextlib.suppress(Exception):
            self.writer.close()


class DayMerger:
    """One day's merge in progress: fed staged files in key order, it writes the fresh events
    to a hidden file; :meth:`finish` closes it — in a lake folder the file stays hidden in the
    day's partition until the commit renames it; in an S3 lake it is put as one object under
    the merge's own name (a ``PutObject`` is whole or absent)."""

    def __init__(
        self, lake: LocalLake, day: dt.date, staging: StagingArea, name: str,
        options: IngestOptions,
    ) -> None:  # fmt: skip
        # A file of this merge's own name can only be an earlier attempt of this same merge
        # (a task retried after its worker died once it had put the file): it is replaced.
        existing = [f for f in lake.event_files(day) if f.name != name]
        ids = lake.store.read_frame(existing, [s.EVENT_ID]).to_series() if existing else None
        self.seen = SeenIds(ids, partial(_stored_details, lake, existing))
        self.lake, self.staging, self.name, self.options = lake, staging, name, options
        self.result = DayMerge(day, None, None)
        self.writer: _RowGroupWriter | None = None
        self.buffered: list[pa.Table] = []
        self.buffered_rows = self.buffered_bytes = 0

    def add(self, staged: StagedFile) -> None:
        try:
            fresh = _fresh_rows(self.staging.read_table(staged.path), self.seen, self.result)
            if fresh is not None:
                self.buffered.append(fresh)
                self.buffered_rows += fresh.num_rows
                self.buffered_bytes += fresh.nbytes
                self.result.written += fresh.num_rows
            options = self.options
            if self.buffered_rows >= options.flush_events or (
                self.buffered_bytes >= options.flush_bytes
            ):
                self.flush()
            _trim_heap_if_large()
        except BaseException:
            self.abandon()
            raise

    def flush(self) -> None:
        """Write the buffered fresh events as a row group of the hidden file."""
        if not self.buffered:
            return
        result = self.result
        if self.writer is None:
            hidden = f".tmp-{uuid.uuid4().hex}-{self.name}.partial"
            if self.lake.in_place:  # this machine's temporary folder, put whole at the end
                result.hidden = Path(tempfile.gettempdir()) / f"keytrail-merge{hidden}"
            else:
                result.final = self.lake.partition_dir(result.day) / self.name
                result.final.parent.mkdir(parents=True, exist_ok=True)
                result.hidden = result.final.with_name(hidden)
            self.writer = _RowGroupWriter(
                pq.ParquetWriter(result.hidden, s.EVENT_FILE_SCHEMA, **EVENT_PARQUET_OPTIONS)
            )
        self.writer.write(self.buffered)
        self.buffered, self.buffered_rows, self.buffered_bytes = [], 0, 0

    def finish(self) -> DayMerge:
        try:
            self.flush()
            if self.writer is not None:
                self.writer.close()
                self.writer = None
                assert self.result.hidden is not None
                if self.lake.in_place:
                    key = f"{LocalLake.partition_key(self.result.day)}/{self.name}"
                    self.lake.store.upload_file(key, self.result.hidden)
                    self.result.hidden.unlink(missing_ok=True)
                    self.result.hidden, self.result.key = None, key
                else:
                    with open(self.result.hidden, "rb+") as handle:
                        os.fsync(handle.fileno())
        except BaseException:
            self.abandon()
            raise
        return self.result

    def abandon(self) -> None:
        """Close and delete the hidden file: nothing of this merge reaches the lake."""
        if self.writer is not None:
            self.writer.abandon()
            self.writer = None
        if self.result.hidden is not None:
            self.result.hidden.unlink(missing_ok=True)


def merge_day(
    lake: LocalLake,
    day: dt.date,
    files: Sequence[StagedFile],
    staging: StagingArea,
    name: str,
    options: IngestOptions = IngestOptions(),
) -> DayMerge:
    """De-duplicate one day's staged files (in key order) against the lake and each other.

    Decisions are taken on the small key columns with Polars and end as row numbers; the wide
    Arrow table is gathered once by them, only when some rows are left out. Events keep the
    order they were read in (key order, then their order in the object): a row group holds
    events of many accounts and regions across the whole day, so sorting by time would not
    narrow its statistics, and readers that want time order ask for it.

    A repeated eventID is dropped (and counted) when its content
    (:data:`~analytics.ingest.seen_ids.CONTENT_COLUMNS`) equals that of the event already holding
    the ID, as CloudTrail's redeliveries do; with different content it is an *eventID clash*
    (corruption, or someone hiding an event under a known ID) and the newcomer is quarantined as a
    record of its object, naming both objects and event names.

    Days are independent, so merges of different days can run at once (tasks on workers that
    see the lake's folder). The result is a hidden file named ``name`` once renamed; nothing
    is visible in the lake until :meth:`IngestCommit.add` renames it. In an S3 lake the file is
    put whole (visible once complete, under a name no other merge uses) and the commit's
    ``_state/`` record, written last, makes its objects count as read.
    """
    merger = DayMerger(lake, day, staging, name, options)
    for staged in files:
        merger.add(staged)
    return merger.finish()


def _fresh_rows(table: pa.Table, seen: SeenIds, result: DayMerge) -> pa.Table | None:
    """The rows of one staged file whose eventID the day does not hold yet, in their order;
    repeats are counted, clashes recorded in ``result``."""
    table, hashes = merge_hashes(table)
    result.candidates += table.num_rows
    if not table.num_rows:
        return None
    keys = pl.from_arrow(table.select([s.SOURCE_OBJECT, s.EVENT_NAME]))
    assert isinstance(keys, pl.DataFrame)
    # The day remembers the fresh IDs packed (SeenIds copies what it keeps), so these may share
    # the staged file's buffers.
    keys = keys.insert_column(0, pl.Series(s.EVENT_ID, table.column(s.EVENT_ID)))
    keys = keys.hstack(hashes).with_row_index(_ROW)
    clashes: list[pl.DataFrame] = []
    wanted = keys
    # Repeats inside one staged file are rare (a redelivered object read in the same run); the
    # window functions that sort them out run only when there are some.
    if keys.get_column(s.EVENT_ID).n_unique() < keys.height:
        first = pl.col(s.EVENT_ID).is_first_distinct()
        other_content = pl.col(CONTENT) != pl.col(CONTENT).first().over(s.EVENT_ID)
        keys = keys.with_columns(
            first.alias(_FIRST),
            (~first & other_content).alias(_CLASH),
            pl.col(s.SOURCE_OBJECT).first().over(s.EVENT_ID).alias(HOLDER),
            pl.col(s.EVENT_NAME).first().over(s.EVENT_ID).alias(HOLDER_EVENT),
        )
        clashes.append(keys.filter(pl.col(_CLASH)).drop(_FIRST, _CLASH))
        wanted = keys.filter(pl.col(_FIRST)).drop(_FIRST, _CLASH, HOLDER, HOLDER_EVENT)
    known = seen.lookup(wanted.get_column(s.EVENT_ID), wanted.get_column(ID_HASH))
    is_known = known.get_column(KNOWN)
    if is_known.any():
        differs = (known.get_column(CONTENT) != wanted.get_column(CONTENT)).fill_null(False)
        clashes.append(wanted.hstack(known.select(HOLDER, HOLDER_EVENT)).filter(is_known & differs))
    fresh = wanted.filter(~is_known)
    if clashes:
        _record_clashes(table, pl.concat(clashes, how="diagonal_relaxed"), result)
    if fresh.is_empty():
        return None
    rows = fresh.get_column(_ROW)
    seen.add(
        fresh.get_column(s.EVENT_ID),
        fresh.select(
            pl.col(CONTENT),
            pl.col(s.SOURCE_OBJECT).cast(pl.Categorical).alias(HOLDER),
            pl.col(s.EVENT_NAME).cast(pl.Categorical).alias(HOLDER_EVENT),
        ),
        fresh.get_column(ID_HASH),
    )
    if rows.len() == table.num_rows:
        return table  # every row is fresh: nothing to gather
    # Gathering rows from one chunk is 4× faster than from many.
    return table.combine_chunks().take(rows.to_arrow())


def _record_clashes(table: pa.Table, clashed: pl.DataFrame, result: DayMerge) -> None:
    """Each clashing newcomer as a bad record of its object, with a reason naming the object
    (and event name) that holds the ID and its own."""
    for row in clashed.sort(_ROW).iter_rows(named=True):
        reason = (
            f"{EVENT_ID_CLASH}: {_quoted(row[s.EVENT_ID])} is already held by "
            f"{_quoted(row[HOLDER_EVENT])} from {_quoted(row[HOLDER])}; this "
            f"{_quoted(row[s.EVENT_NAME])} from {_quoted(row[s.SOURCE_OBJECT])} has "
            "different content"
        )
        stored = table.slice(row[_ROW], 1).to_pylist()[0]
        text = orjson.dumps(stored, default=str).decode()[:_MAX_CLASH_TEXT]
        bad = BadRecord(None, reason, text, stored.get(s.EVENT_DATE))
        result.clashes.append((row[s.SOURCE_OBJECT], bad))


@dataclass(frozen=True)
class MergeJob:
    """One day's merge of one commit, as the arguments of :func:`merge_day`."""

    lake: LocalLake
    day: dt.date
    files: tuple[StagedFile, ...]
    staging: StagingArea
    name: str
    options: IngestOptions

    def run(self) -> DayMerge:
        return merge_day(self.lake, self.day, self.files, self.staging, self.name, self.options)


MergeRunner = Callable[[list[MergeJob]], list[DayMerge]]
"""Runs a commit's day merges (in this process by default; the flow may send them to workers)."""


def merge_here(jobs: list[MergeJob]) -> list[DayMerge]:
    return [job.run() for job in jobs]


class IngestCommit:
    """The single writer of one ingest: each :meth:`add` makes a batch of staged partitions part
    of the lake, exactly once; :meth:`close` ends the run. The caller holds the lake lock."""

    def __init__(
        self,
        lake: LocalLake,
        options: IngestOptions,
        summary: IngestSummary,
        staging: StagingArea,
        merge: MergeRunner = merge_here,
    ) -> None:
        if not lake.in_place:
            lake.root.mkdir(parents=True, exist_ok=True)
            lake.remove_stale_temporaries()
        self.lake = lake
        self.options = options
        self.summary = summary
        self.staging = staging
        self.merge = merge
        self.run_id = staging.root.rstrip("/").rsplit("/", 1)[-1]
        self.checkpoints = 0
        self.taken: list[StagedPartition] = []
        self.mergers: dict[dt.date, DayMerger] = {}
        self.merged: list[DayMerge] = []
        state, self.state_version = lake.read_state_versioned()
        self.state = {row[s.OBJ_KEY]: row for row in state.to_pylist()}
        self.dates_written: set[dt.date] = set()

    def add(self, staged: Sequence[StagedPartition]) -> None:
        """Merge a batch (days through :attr:`merge`, possibly at once), then
        :meth:`checkpoint`: the batch is part of the lake when this returns."""
        if self.taken or self.mergers:  # what :meth:`feed` took goes in first, in files of its own
            self.checkpoint()
        staged = sorted(staged, key=lambda p: p.partition.index)
        self._take(staged)
        by_day: dict[dt.date, list[StagedFile]] = {}
        for part in staged:
            for staged_file in part.files:
                by_day.setdefault(staged_file.day, []).append(staged_file)
        jobs = [MergeJob(self.lake, day, tuple(files), self.staging, self._file_name(),
                         self.options) for day, files in sorted(by_day.items())]  # fmt: skip
        self.merged.extend(self.merge(jobs))
        self.checkpoint()

    def feed(self, part: StagedPartition) -> None:
        """Merge one partition now, in this process (partitions must come in plan order): the
        commit's merging overlaps the reading of the next partitions. Visible at
        :meth:`checkpoint`."""
        self._take([part])
        for staged_file in part.files:
            merger = self.mergers.get(staged_file.day)
            if merger is None:
                merger = DayMerger(self.lake, staged_file.day, self.staging, self._file_name(),
                                   self.options)  # fmt: skip
                self.mergers[staged_file.day] = merger
            merger.add(staged_file)
        # One bound for the buffers of all open days, not one per day: a run spanning many
        # days would otherwise hold a full buffer for each. Past it the largest buffers are
        # written until a quarter of the bound is left, so a day that only gets a few late
        # events from each partition gathers them into one row group instead of writing a
        # row group of a dozen rows at every flush.
        bound = self.options.flush_events
        largest_first = sorted(self.mergers.values(), key=lambda m: -m.buffered_rows)
        buffered = sum(m.buffered_rows for m in largest_first)
        if buffered >= bound:
            for merger in largest_first:
                if buffered <= bound // 4:
                    break
                buffered -= merger.buffered_rows
                merger.flush()

    @property
    def pending_events(self) -> int:
        """Staged events taken since the last checkpoint."""
        return sum(p.events_staged for p in self.taken)

    def _file_name(self) -> str:
        return f"part-{self.run_id}-{self.checkpoints + 1:05d}.parquet"

    def _take(self, staged: Sequence[StagedPartition]) -> None:
        self.taken.extend(staged)
        summary = self.summary
        _tally(summary, [o for p in staged for o in p.outcomes])
        for part in staged:
            part.counts.add_to(summary)
            summary.bytes_read += part.bytes_read
            summary.events_read += part.events_read
            summary.events_outside_range += part.events_outside_range

    def checkpoint(self) -> None:
        """Rename every merged day file into place (an S3 lake's are put already), write the
        quarantine, record the objects in ``_state/`` — last, and on S3 only if no other writer
        replaced it since this run read it — then remove their staged files."""
        merged = [*self.merged, *(m.finish() for _, m in sorted(self.mergers.items()))]
        staged, summary = self.taken, self.summary
        self.merged, self.mergers, self.taken = [], {}, []
        if not staged and not merged:
            return
        self.checkpoints += 1
        outcomes = [o for p in staged for o in p.outcomes]
        by_key = {o.ref.key: o for o in outcomes}
        for day_merge in merged:
            summary.events_written += day_merge.written
            summary.duplicate_events_dropped += day_merge.duplicates
            for source_object, bad in day_merge.clashes:
                summary.event_id_clashes += 1
                summary.clashes.append(bad.reason)
                outcome = by_key.get(source_object)
                if outcome is not None:
                    outcome.bad_records.append(bad)
        try:
            for day_merge in merged:
                if day_merge.hidden is not None and day_merge.final is not None:
                    os.replace(day_merge.hidden, day_merge.final)
                if day_merge.final is not None or day_merge.key is not None:
                    self.dates_written.add(day_merge.day)
            self._write_quarantine(outcomes)
        except BaseException:
            self.merged = merged  # not committed: :meth:`abandon` removes what they put
            raise
        # Not inside the try: a state write whose answer was lost may have committed, and
        # files it names must stay; uncommitted ones are dropped by the next run's merge.
        self._write_state(outcomes)
        for part in staged:
            for staged_file in part.files:
                self.staging.remove(staged_file.path)

    def close(self) -> IngestSummary:
        """End the run: commit what is pending, drop the staging area, report the days."""
        self.checkpoint()
        self.staging.remove()
        self.summary.dates_written = [d.isoformat() for d in sorted(self.dates_written)]
        return self.summary

    def abandon(self) -> None:
        """After a failure: drop the hidden merges and what was staged and never committed."""
        for merger in self.mergers.values():
            merger.abandon()
        for day_merge in self.merged:
            if day_merge.hidden is not None:
                day_merge.hidden.unlink(missing_ok=True)
            if day_merge.key is not None:  # put, but never recorded in _state/
                with contextlib.suppress(Exception):
                    self.lake.store.delete(day_merge.key)
        self.mergers, self.merged = {}, []
        with contextlib.suppress(Exception):
            self.staging.remove()

    def _write_quarantine(self, outcomes: list[ObjectOutcome]) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        for outcome in outcomes:
            name = safe_name(outcome.ref.key)
            if outcome.status == "quarantined":
                record = {
                    "source_object": outcome.ref.key,
                    "reason": outcome.reason,
                    "size": outcome.ref.size,
                    "etag": outcome.ref.etag,
                    "quarantined_at": now,
                }
                text = orjson.dumps(record, option=orjson.OPT_INDENT_2)
                self.lake.store.write_bytes(f"quarantine/objects/{name}.json", text)
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
                self.lake.store.write_bytes(f"quarantine/records/{name}.jsonl", lines)

    def _write_state(self, outcomes: list[ObjectOutcome]) -> None:
        now = dt.datetime.now(dt.UTC)
        selection = self.options.selection
        changed = False
        for outcome in outcomes:
            if outcome.status == "failed":
                continue
            previous = self.state.get(outcome.ref.key)
            same_object = previous is not None and previous[s.OBJ_ETAG] == outcome.ref.etag
            written = (
                set(previous[s.OBJ_DATES_WRITTEN] or []) if same_object and previous else set()
            )
            written.update(d for d in outcome.dates if selection.covers(d))
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
            table = pa.Table.from_pylist(rows, schema=s.OBJECT_STATE_SCHEMA)
            self.state_version = self.lake.write_state(table, self.state_version)


def commit(
    lake: LocalLake,
    staged: Sequence[StagedPartition],
    staging: StagingArea,
    options: IngestOptions,
    summary: IngestSummary,
) -> IngestSummary:
    """Make a run's staged partitions part of the lake in one batch, and end the run."""
    session = IngestCommit(lake, options, summary, staging)
    session.add(staged)
    return session.close()


# --- the CLI's face -----------------------------------------------------------------------------


def open_staging(lake: LocalLake, run_id: str) -> StagingArea:
    """The run's staging area in the lake (a folder, or the S3 lake's ``_staging/`` prefix),
    after removing what killed runs left there."""
    staging = lake.staging_area(run_id)
    staging.remove_all_runs()
    return staging


PartitionMapper = Callable[
    [Callable[[Partition], StagedPartition], list[Partition]], Iterable[StagedPartition]
]
"""Runs the read of every partition somewhere, yielding the messages in plan order."""


def ingest(
    source: Source,
    lake: LocalLake,
    options: IngestOptions = IngestOptions(),
    progress: ProgressCallback | None = None,
    mapper: PartitionMapper | None = None,
) -> IngestSummary:
    """Read every wanted, not-yet-ingested object of ``source`` into ``lake``: plan, read the
    partitions (small neighbouring ones together, :func:`batched`) on ``options.workers`` threads
    of this process, staged in memory (or through ``mapper``: the flow's task runner, a Dask
    cluster, one task per partition, staged in the lake), commit every ``checkpoint_events``
    staged events (so a long run shows progress in the lake) and at the end."""
    # This process reads: its compiled scanner loads while the source is listed. The run waits
    # for the load to end (a run with nothing to read ends sooner), so the process never exits
    # while that thread is inside numba's native code.
    loader = load_scanner_early() if mapper is None else None
    try:
        return _ingest(source, lake, options, progress, mapper)
    finally:
        if loader is not None:
            loader.join()


def _ingest(
    source: Source,
    lake: LocalLake,
    options: IngestOptions,
    progress: ProgressCallback | None,
    mapper: PartitionMapper | None,
) -> IngestSummary:
    started = time.perf_counter()
    summary = IngestSummary(source=source.describe())
    if not lake.in_place:
        lake.root.mkdir(parents=True, exist_ok=True)
    the_plan = plan(source, lake, options.selection, options.piece_bytes)
    staging = open_staging(lake, the_plan.run_id)
    if mapper is None:
        # The read tasks are threads of this process: what they stage is handed to the merge
        # in memory. Only the merged day files and the commit record go to the lake. Small
        # folders are read together, a chunk's worth at a time (a mapper gets the flow's tasks:
        # one per folder or piece).
        staging = StagingArea.in_memory(the_plan.run_id)
        the_plan.partitions = batched(the_plan.partitions, options.chunk_bytes)
    session = IngestCommit(lake, options, summary, staging)
    the_plan.counts.add_to(summary)
    state = Progress(objects_total=the_plan.objects)
    if progress:
        progress(state)
    read = partial(_read_for_cli, source=source, options=options, plan=the_plan, staging=staging)
    results: Iterator[StagedPartition] = iter(())
    try:
        if mapper is None:
            results = _bounded_ordered_map(read, the_plan.partitions, options.workers)
        else:
            results = iter(mapper(read, the_plan.partitions))
        for staged in results:
            session.feed(staged)
            state.objects_done += len(staged.outcomes)
            state.events_done += staged.events_read
            state.bytes_done += staged.bytes_read
            if progress:
                progress(state)
            if session.pending_events >= options.checkpoint_events:
                session.checkpoint()
        session.close()
    except BaseException:
        # Stop the reads first (a running one ends, staging its table), then drop everything
        # staged: nothing a read task left behind outlives the run.
        close = getattr(results, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        session.abandon()
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _read_for_cli(
    partition: Partition,
    source: Source,
    options: IngestOptions,
    plan: IngestPlan,
    staging: StagingArea,
) -> StagedPartition:
    return read_partition(source, partition, options, plan.known_for(partition), staging)


def _tally(summary: IngestSummary, outcomes: Iterable[ObjectOutcome]) -> None:
    for outcome in outcomes:
        if outcome.status == "ingested":
            summary.objects_ingested += 1
            summary.records_quarantined += len(outcome.bad_records)
            if outcome.notes:
                summary.objects_with_notes += 1
            summary.objects_scanned += outcome.scanned
            if outcome.scan_fallback:
                fallbacks = summary.scanner_fallbacks
                fallbacks[outcome.scan_fallback] = fallbacks.get(outcome.scan_fallback, 0) + 1
        elif outcome.status == "quarantined":
            summary.objects_quarantined += 1
            summary.quarantined.append(f"{outcome.ref.key}: {outcome.reason}")
        else:
            summary.objects_failed += 1
            summary.failed.append(outcome.reason or outcome.ref.key)
