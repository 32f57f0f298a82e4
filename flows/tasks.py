"""The Prefect tasks of the nightly and backfill flows: thin wrappers of ``analytics`` functions.

Each task is one step a run can be watched, retried or blamed at; what it computes lives in
``analytics`` and is tested there without Prefect. Retries are set only where the outside world
can fail transiently — listing and fetching the trail, sending alerts — never on lake writes or
computation, where a retry repeats the same error and hides it for a while.

Ingest fans out over (account, region, delivery day) partitions of the trail:

* :func:`plan_ingest` finds the partitions and which objects are already in the lake. An S3 trail
  in the native layout is planned by its folders (the listing of each folder is left to the
  partition's task, because for a large organisation the listing is itself thousands of calls);
  a local tree, or a bucket in another layout, is listed here once and cut into partitions.
* :func:`read_partition` — the expensive part, and the only one sent to the task runner (threads
  by default, Dask workers with ``--task-runner dask``) — lists, fetches, decodes and normalises
  one partition into Arrow tables. It never touches the lake, so it may run anywhere the trail
  can be read.
* :class:`analytics.ingest.IngestCommit` is the single writer, fed wave by wave by
  :func:`commit_ingest` and closed by :func:`finish_ingest`, in the flow's own process under the
  lake lock. It de-duplicates and writes in partition order, which is the trail's key order —
  the order plain ``keytrail ingest`` commits in, through the same writer — so both produce the
  same rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from analytics import schema as s
from analytics.adapters.lake import LocalLake, write_bytes_atomic
from analytics.adapters.sources import ObjectRef, Source, SourceError
from analytics.config import Config
from analytics.export.idempotency import SINK_KINDS
from analytics.ingest import (
    IngestCommit,
    IngestOptions,
    IngestSummary,
    list_log_objects,
    needs_reading,
    read_objects,
    select_log_objects,
)
from analytics.layout import Selection, classify
from flows import sinks

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

    from analytics.baselines import Baselines
    from analytics.detect import DetectionResult, FeatureWindow
    from analytics.export.settings import HecSettings
    from analytics.export.sinks import Sink

PIECE_BYTES = 8 * 1024 * 1024
"""Compressed bytes one read task takes from a pre-listed partition (~40k events)."""
_S3_DAY_PREFIX = re.compile(
    r"(?:^|/)(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/"
    r"(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})/$"
)


# --- values passed between tasks ----------------------------------------------------------------


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

    @property
    def name(self) -> str:
        name = f"{self.account}/{self.region}/{self.delivered.isoformat()}"
        return f"{name}#{self.piece}" if self.piece else name


@dataclass
class ListingCounts:
    """What a listing found, in :class:`~analytics.ingest.IngestSummary`'s terms."""

    objects_seen: int = 0
    objects_skipped: int = 0
    digests_skipped: int = 0
    insights_skipped: int = 0
    other_files_skipped: int = 0

    def add_to(self, summary: IngestSummary) -> None:
        for item in dataclasses.fields(self):
            name = item.name
            setattr(summary, name, getattr(summary, name) + getattr(self, name))


@dataclass
class IngestPlan:
    partitions: list[Partition]
    counts: ListingCounts
    # Lake state rows of the objects under each S3 folder partition, so its task can tell new
    # objects from ingested ones without reading the lake.
    known: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def known_for(self, partition: Partition) -> dict[str, dict[str, Any]]:
        return self.known.get(partition.prefix or "", {})


@dataclass
class PartitionRead:
    """A partition decoded: chunk results in key order, plus what its listing found."""

    partition: Partition
    chunks: list[Any]
    counts: ListingCounts
    seconds: float


@dataclass(frozen=True)
class SinkSpec:
    """A sink named on the command line or in a deployment's parameters.

    ``ocsf-file[=PATH]``, ``s3=s3://bucket/prefix``, ``splunk-hec[=URL]`` (without a URL, the
    ``[hec] url`` of the configuration), ``securityhub[=REGION]``.
    """

    kind: str
    target: str | None = None

    @classmethod
    def parse(cls, text: str) -> SinkSpec:
        kind, _, target = text.partition("=")
        kind = kind.strip()
        if kind not in SINK_KINDS:
            raise ValueError(f"unknown sink {kind!r}; expected one of {', '.join(SINK_KINDS)}")
        spec = cls(kind, target.strip() or None)
        if kind == "s3" and not (spec.target or "").startswith("s3://"):
            raise ValueError("sink s3 needs a target: s3=s3://bucket[/prefix]")
        return spec

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}={self.target}"


class ExportFailed(RuntimeError):
    """A sink refused or kept failing; ``retryable`` as in :class:`analytics.export.SinkError`."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class PartitionFailed(RuntimeError):
    """Objects of a partition could not be fetched; the task is retried, then the stage fails."""


# --- retry conditions ---------------------------------------------------------------------------


def _failure(state: State) -> BaseException | None:
    try:
        state.result()
    except BaseException as exc:  # the state's own exception, re-raised by result()
        return exc
    return None


def _retry_unless_source_error(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry listing and fetching, but not a :class:`SourceError`: botocore has already retried
    throttling and 5xx answers, and what is left (no bucket, access denied) needs a human."""
    return not isinstance(_failure(state), SourceError)


def _retry_if_retryable(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    exc = _failure(state)
    return isinstance(exc, ExportFailed) and exc.retryable


# --- ingest -------------------------------------------------------------------------------------


def _partition_of(ref: ObjectRef) -> tuple[str, str, dt.date] | None:
    _, name = classify(ref.key)
    return None if name is None else (name.account, name.region, name.delivered)


def partitions_of(refs: Sequence[ObjectRef], piece_bytes: int = PIECE_BYTES) -> list[Partition]:
    """Cut key-ordered refs into runs of one (account, region, delivery day), and a run larger
    than ``piece_bytes`` (compressed) into pieces, each a task of its own.

    Runs rather than groups: a tree whose keys interleave partitions (a flat folder sorted by
    name does not, the native layout does not, but an odd one might) still commits in key
    order. Pieces: one busy account-region can hold most of an organisation's events, and as
    a single task it would leave every other worker idle while it is decoded.
    """
    runs: list[tuple[tuple[str, str, dt.date], list[ObjectRef]]] = []
    for ref in refs:
        key = _partition_of(ref)
        if key is None:
            continue
        if runs and runs[-1][0] == key:
            runs[-1][1].append(ref)
        else:
            runs.append((key, [ref]))
    partitions: list[Partition] = []
    for key, run in runs:
        pieces: list[list[ObjectRef]] = [[]]
        size = 0
        for ref in run:
            if size >= piece_bytes:
                pieces.append([])
                size = 0
            pieces[-1].append(ref)
            size += ref.size
        numbered = len(pieces) > 1
        for index, piece in enumerate(pieces, start=1):
            partitions.append(Partition(*key, refs=tuple(piece), piece=index if numbered else 0))
    return partitions


def _state_by_folder(lake: LocalLake) -> dict[str, dict[str, dict[str, Any]]]:
    by_folder: dict[str, dict[str, dict[str, Any]]] = {}
    for row in lake.read_state().to_pylist():
        key = row[s.OBJ_KEY]
        by_folder.setdefault(key.rsplit("/", 1)[0] + "/", {})[key] = row
    return by_folder


@task(name="plan-ingest", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_retry_unless_source_error)  # fmt: skip
def plan_ingest(source: Source, lake: LocalLake, selection: Selection) -> IngestPlan:
    """Find the partitions to read and, where the listing is cheap, the objects in them."""
    days = selection.delivery_days()
    folders = source.day_prefixes(days) if days is not None else None
    if folders is not None:
        state = _state_by_folder(lake)
        partitions = []
        known = {}
        for folder in sorted(folders):
            match = _S3_DAY_PREFIX.search(folder)
            if match is None:
                continue
            day = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
            partitions.append(Partition(match["account"], match["region"], day, prefix=folder))
            known[folder] = state.get(source.folder_key(folder), {})
        return IngestPlan(partitions, ListingCounts(), known)
    state_rows = {row[s.OBJ_KEY]: row for row in lake.read_state().to_pylist()}
    listing = IngestSummary()
    refs = list_log_objects(source, selection, listing)
    pending = [ref for ref in refs if needs_reading(ref, state_rows.get(ref.key), selection)]
    counts = ListingCounts(
        objects_seen=len(refs),
        objects_skipped=len(refs) - len(pending),
        digests_skipped=listing.digests_skipped,
        insights_skipped=listing.insights_skipped,
        other_files_skipped=listing.other_files_skipped,
    )
    return IngestPlan(partitions_of(pending), counts)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger (shipped to the Prefect API), or a plain one when a task's function is
    called outside a run, as the tests do."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("keytrail.flows")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Decoding allocates millions of short-lived, acyclic objects; the cyclic collector's passes
    over them cost about a quarter of the decode time (``analytics.ingest`` turns it off in its
    worker processes for the same reason). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@task(name="read-partition", cache_policy=NO_CACHE, task_run_name="read-{partition.name}",
      retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_retry_unless_source_error)  # fmt: skip
def read_partition(
    source: Source,
    partition: Partition,
    options: IngestOptions,
    known: dict[str, dict[str, Any]],
) -> PartitionRead:
    """List (if an S3 folder), fetch and decode one partition; raises if an object can't be read.

    A quarantined object is an outcome, not an error. An object that cannot be *fetched*
    (permission, vanished, network) fails the task so Prefect retries it; if it still fails,
    the ingest stage fails with the reason after committing every other partition.
    """
    started = time.perf_counter()
    counts = ListingCounts()
    if partition.prefix is not None:
        listed = source.list_folder(partition.prefix)
        wanted = select_log_objects(listed, options.selection, counts)
        refs = [r for r in wanted if needs_reading(r, known.get(r.key), options.selection)]
        counts.objects_seen = len(wanted)
        counts.objects_skipped = len(wanted) - len(refs)
    else:
        refs = list(partition.refs)
    with _gc_paused():
        chunks = list(read_objects(source, refs, options))
    failed = [o.reason or o.ref.key for c in chunks for o in c.outcomes if o.status == "failed"]
    if failed:
        raise PartitionFailed(
            f"{len(failed)} object(s) of {partition.name} could not be read; first: {failed[0]}"
        )
    seconds = round(time.perf_counter() - started, 3)
    events = sum(c.table.num_rows for c in chunks if c.table is not None)
    _logger().info("read %s: %d object(s), %d event(s) in %.2f s",
                          partition.name, len(refs), events, seconds)  # fmt: skip
    return PartitionRead(partition, chunks, counts, seconds)


class Wave:
    """The partitions read in one wave, in plan order.

    A plain class on purpose: Prefect walks lists and dataclasses passed to a task (looking
    for futures) and would visit every decoded object of the wave; an opaque object is passed
    as it is.
    """

    def __init__(self, reads: list[PartitionRead]) -> None:
        self.reads = reads


@task(name="commit-ingest", cache_policy=NO_CACHE)
def commit_ingest(session: IngestCommit, wave: Wave) -> int:
    """Add a wave of partitions to the run's single writer, in plan (= key) order.

    Returns the events added. Buffers are flushed to hidden files as they fill; nothing is
    visible in the lake until :func:`finish_ingest`.
    """
    added = 0
    for read in wave.reads:
        for chunk in read.chunks:
            session.add(chunk)
            added += chunk.table.num_rows if chunk.table is not None else 0
        read.counts.add_to(session.summary)
    return added


@task(name="finish-ingest", cache_policy=NO_CACHE)
def finish_ingest(session: IngestCommit) -> IngestSummary:
    """Rename the stage's files into the lake, then record their objects in the state."""
    return session.close()


# --- features, baselines, detection -------------------------------------------------------------


@task(name="features", cache_policy=NO_CACHE)
def build_features(lake: LocalLake, day: dt.date, config: Config) -> FeatureWindow:
    """Bring the hourly feature files of the window up to date and read them, once per day."""
    from analytics import detect

    return detect.feature_window(lake, day, config)


@task(name="baselines", cache_policy=NO_CACHE)
def summarise_baselines(window: FeatureWindow, config: Config) -> Baselines:
    """Baselines of the window's day from the days before it only."""
    from analytics import detect

    return detect.day_baselines(window, config)


@task(name="detect", cache_policy=NO_CACHE)
def detect_day(
    lake: LocalLake, window: FeatureWindow, baselines: Baselines, config: Config
) -> DetectionResult:
    """Rules and the isolation forest for the window's day on the features and baselines the
    run already has; writes the day's alerts file."""
    from analytics import detect

    return detect.run(lake, window.day, config, window=window, baselines=baselines)


# --- publishing ---------------------------------------------------------------------------------


@task(name="publish", cache_policy=NO_CACHE)
def publish_day(
    lake: LocalLake,
    day: dt.date,
    config: Config,
    inventory_regions: Sequence[str] = (),
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Write the day's reports (and ask KMS for its inventory when regions are given).

    No Prefect retries: botocore already retries the KMS calls, and what is left (no
    credentials, access denied) needs a human, not another attempt.
    """
    from analytics import reports

    snapshots: list[Any] = []
    notes: list[str] = []
    if inventory_regions:
        from analytics.adapters.kms_inventory import InventoryError, snapshot

        try:
            found = snapshot(sorted(set(inventory_regions)), endpoint_url=endpoint_url)
        except InventoryError as exc:
            raise RuntimeError(f"KMS inventory: {exc}") from None
        snapshots = list(found.keys)
        regions = ", ".join(sorted(set(inventory_regions)))
        notes = [f"KMS inventory of {regions}: {len(found.keys)} key(s)"]
        notes += [f"KMS inventory: {error}" for error in found.errors]
    report, files = reports.run(
        lake,
        day,
        snapshots=snapshots,
        org_accounts=frozenset(config.org_accounts),
        window_days=config.baseline_window_days,
        notes=notes,
        config=config,
    )
    return {
        "report_html": str(files["report.html"]),
        "files": len(files),
        "headline": dict(report.headline),
        "notes": list(report.notes),
        "warming_up": list(report.warming_up),
    }


def make_sink(
    spec: SinkSpec,
    lake: LocalLake,
    day: dt.date,
    endpoint_url: str | None = None,
    hec_token_block: str | None = None,
    hec: HecSettings | None = None,
) -> Sink:
    """The sink a spec names, built by :func:`flows.sinks.make_sink` as the CLI's are."""
    try:
        return sinks.make_sink(
            spec.kind, spec.target, lake, day, hec=hec,
            hec_token_block=hec_token_block, endpoint_url=endpoint_url,
        )  # fmt: skip
    except sinks.SinkUnavailable as exc:
        raise ExportFailed(f"{spec.kind}: {exc}", False) from None


@task(name="export", cache_policy=NO_CACHE, task_run_name="export-{spec.kind}", retries=2,
      retry_delay_seconds=[60, 300], retry_condition_fn=_retry_if_retryable)  # fmt: skip
def export_day(
    lake: LocalLake,
    day: dt.date,
    spec: SinkSpec,
    endpoint_url: str | None = None,
    hec_token_block: str | None = None,
    hec: HecSettings | None = None,
) -> dict[str, Any]:
    """Send the day's unsuppressed alerts to one sink, each at most once (the ledger's job).

    Retried only when the sink says a later try may succeed (throttling, 5xx, alerts Splunk did
    not acknowledge in time): the sinks already back off inside one try, so a Prefect retry is
    for outages of minutes.
    """
    from analytics.export import SinkError, export

    sink = make_sink(spec, lake, day, endpoint_url, hec_token_block, hec)
    try:
        result = export(lake, day, sink)
    except SinkError as exc:
        raise ExportFailed(f"{spec.kind}: {exc}", exc.retryable) from None
    outcome = result.to_dict()
    if result.failed:
        first = result.failed[0]
        raise ExportFailed(
            f"{spec.kind}: {len(result.failed)} alert(s) not accepted; first "
            f"{first.get(s.ALERT_ID)}: {first.get('reason')}",
            True,
        )
    if result.unconfirmed:
        raise ExportFailed(f"{spec.kind}: {'; '.join(result.notes)}", True)
    return outcome


# --- completion records -------------------------------------------------------------------------


def record_path(lake: LocalLake, day: dt.date) -> Path:
    """``LAKE/_state/days/D.json``: written when every stage of ``day`` has finished."""
    return lake.root / "_state" / "days" / f"{day.isoformat()}.json"


def inputs_fingerprint(
    lake: LocalLake, day: dt.date, config: Config, sinks: Sequence[SinkSpec],
    inventory_regions: Sequence[str],
) -> str:  # fmt: skip
    """Everything a day's results depend on: the window's event files, settings and sinks.

    Equal fingerprints mean a rerun would compute the same alerts and reports, so the run skips
    the day instead of rewriting identical files under a new ``generated_at``.
    """
    from analytics.detect import window_dates
    from analytics.features import events_fingerprint

    files = [path for d in window_dates(day, config) for path in lake.event_files(d)]
    digest = hashlib.sha256()
    digest.update(events_fingerprint(files).encode())
    digest.update(repr(config).encode())
    digest.update(repr(sorted(str(x) for x in sinks)).encode())
    digest.update(repr(sorted(inventory_regions)).encode())
    return digest.hexdigest()


def read_record(lake: LocalLake, day: dt.date) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(record_path(lake, day).read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return record


def is_complete(lake: LocalLake, day: dt.date, fingerprint: str) -> bool:
    record = read_record(lake, day)
    return record is not None and record.get("fingerprint") == fingerprint


def write_record(lake: LocalLake, day: dt.date, record: dict[str, Any]) -> None:
    write_bytes_atomic(
        (json.dumps(record, indent=2, default=str) + "\n").encode(), record_path(lake, day)
    )
