"""The Prefect tasks of the nightly and backfill flows: thin wrappers of ``analytics`` functions.

Each task is one step a run can be watched, retried or blamed at; what it computes lives in
``analytics`` and is tested there without Prefect. Retries are set only where the outside world
can fail transiently — listing and fetching the trail, sending alerts — never on lake writes or
computation, where a retry repeats the same error and hides it for a while.

Ingest is :mod:`analytics.ingest.pipeline`'s three steps as tasks: :func:`plan_ingest` in the flow's
process; :func:`read_partition` × partitions through the task runner (threads, or Dask workers
with ``--task-runner dask``), each staging its events in the lake itself and returning a small
message; :func:`commit_ingest` in the flow's process under the lake lock, whose per-day merges
(:func:`merge_day`) may run through the task runner too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import Source, SourceError
from analytics.config import Config
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import (
    DayMerge,
    IngestCommit,
    IngestOptions,
    IngestPlan,
    IngestSummary,
    MergeJob,
    Partition,
    StagedPartition,
)
from analytics.ingest.pipeline import plan as plan_partitions
from analytics.ingest.pipeline import read_partition as read_and_stage
from analytics.ingest.staging import StagingArea
from analytics.lake import schema as s
from analytics.publish.export.idempotency import SINK_KINDS
from flows import sinks

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

    from analytics.detect.baselines import Baselines
    from analytics.detect.scoring import DetectionResult, FeatureWindow
    from analytics.publish.export.settings import HecSettings
    from analytics.publish.export.sinks import Sink
    from analytics.run import PublishResult


# --- values passed between tasks ----------------------------------------------------------------


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
    """A sink refused or kept failing; ``retryable`` as in
    :class:`analytics.publish.export.SinkError`."""

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


@task(name="plan-ingest", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_retry_unless_source_error)  # fmt: skip
def plan_ingest(source: Source, lake: LocalLake, selection: Selection) -> IngestPlan:
    """Find the partitions to read (:func:`analytics.ingest.pipeline.plan`)."""
    return plan_partitions(source, lake, selection)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger (shipped to the Prefect API), or a plain one when a task's function is
    called outside a run, as the tests do."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("keytrail.flows")


@task(name="read-partition", cache_policy=NO_CACHE, task_run_name="read-{partition.name}",
      retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_retry_unless_source_error)  # fmt: skip
def read_partition(
    source: Source,
    partition: Partition,
    options: IngestOptions,
    known: dict[str, dict[str, Any]],
    staging: StagingArea,
) -> StagedPartition:
    """Read one partition and stage its events in the lake; raises if an object can't be read.

    A quarantined object is an outcome, not an error. An object that cannot be *fetched*
    (permission, vanished, network) fails the task so Prefect retries it (the retry overwrites
    the same staged files); if it still fails, the ingest stage fails with the reason after
    committing every other partition.
    """
    staged = read_and_stage(source, partition, options, known, staging)
    failed = staged.failed
    if failed:
        raise PartitionFailed(
            f"{len(failed)} object(s) of {partition.name} could not be read; first: {failed[0]}"
        )
    _logger().info("read %s: %d object(s), %d event(s) staged in %.2f s", partition.name,
                   len(staged.outcomes), staged.events_staged, staged.seconds)  # fmt: skip
    return staged


@task(name="merge-day", cache_policy=NO_CACHE, task_run_name="merge-{job.day}")
def merge_day(job: MergeJob) -> DayMerge:
    """One day's merge of a commit (:func:`analytics.ingest.pipeline.merge_day`)."""
    return job.run()


@task(name="commit-ingest", cache_policy=NO_CACHE)
def commit_ingest(session: IngestCommit, staged: list[StagedPartition]) -> int:
    """Make a batch of staged partitions part of the lake, exactly once; returns events written."""
    before = session.summary.events_written
    session.add(staged)
    return session.summary.events_written - before


@task(name="finish-ingest", cache_policy=NO_CACHE)
def finish_ingest(session: IngestCommit) -> IngestSummary:
    """Remove the run's staging area; the summary of the stage."""
    return session.close()


# --- features, baselines, detection -------------------------------------------------------------


@task(name="features", cache_policy=NO_CACHE)
def build_features(lake: LocalLake, day: dt.date, config: Config) -> FeatureWindow:
    """Bring the hourly feature files of the window up to date and read them, once per day."""
    from analytics.detect import scoring as detect

    return detect.feature_window(lake, day, config)


@task(name="baselines", cache_policy=NO_CACHE)
def summarise_baselines(window: FeatureWindow, config: Config) -> Baselines:
    """Baselines of the window's day from the days before it only."""
    from analytics.detect import scoring as detect

    return detect.day_baselines(window, config)


@task(name="detect", cache_policy=NO_CACHE)
def detect_day(
    lake: LocalLake, window: FeatureWindow, baselines: Baselines, config: Config
) -> DetectionResult:
    """Rules and the isolation forest for the window's day on the features and baselines the
    run already has; writes the day's alerts file."""
    from analytics.detect import scoring as detect

    return detect.run(lake, window.day, config, window=window, baselines=baselines)


# --- publishing ---------------------------------------------------------------------------------


@task(name="publish", cache_policy=NO_CACHE)
def publish_day(
    lake: LocalLake,
    day: dt.date,
    config: Config,
    inventory_regions: Sequence[str] = (),
    endpoint_url: str | None = None,
) -> PublishResult:
    """Write the day's reports (:func:`analytics.run.publish`).

    No Prefect retries: botocore already retries the KMS calls, and what is left (no
    credentials, access denied) needs a human, not another attempt.
    """
    from analytics.run import publish

    return publish(lake, day, config, inventory_regions, endpoint_url)


def make_sink(
    spec: SinkSpec,
    lake: LocalLake,
    day: dt.date,
    endpoint_url: str | None = None,
    hec_token_block: str | None = None,
    hec: HecSettings | None = None,
) -> Sink:
    """The sink a spec names, built by :func:`analytics.publish.export.settings.sink_for` as the
    CLI's are."""
    from analytics.publish.export.settings import sink_for

    try:
        return sink_for(
            spec.kind, spec.target, lake=lake, day=day, hec_settings=hec,
            token=lambda: sinks.hec_token(hec_token_block), endpoint_url=endpoint_url,
        )  # fmt: skip
    except ValueError as exc:
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
    from analytics.publish.export import SinkError, export

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
