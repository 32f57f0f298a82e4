"""The nightly flow: ingest → features → baselines → detect → publish → export, for one UTC day.

The flow is a short sequencer of the tasks in :mod:`flows.tasks`; everything it decides is here,
everything it computes is in ``analytics``, and the values it passes between stages and returns
are :mod:`analytics.run`'s (:class:`~analytics.run.DayOutcome` and the stage results):

* It holds the lake lock for the whole run, so a second run on the same lake is refused with
  the holder's name instead of interleaving writes (:mod:`analytics.adapters.lock`).
* Ingest reads day D's and D+1's delivery folders (CloudTrail delivers late events of D under
  D+1) and keeps D's events. Partitions are read through the flow's task runner; each read
  stages its events in the lake and returns a small message, and the flow commits them, so its
  memory does not grow with the size of the organisation.
* A quarantined object or record is counted and reported, never a failure. A stage that fails
  (the trail cannot be listed, an object cannot be fetched after retries, a sink refuses) fails
  the flow with ``<stage> failed: <reason>``; everything committed before it stays committed,
  and exactly-once ingest and the sinks' ledgers make the rerun finish the job without
  duplicates.
* After ingest it checks the lake's integrity (:mod:`analytics.lake.check`); findings go into
  the run's log, result and summary artifact, and never fail the run.
* A day whose inputs have not changed since it last completed (same event files in the baseline
  window, same configuration and sinks — see ``LAKE/_state/days/``) is not recomputed: a second
  run changes nothing.

Artifacts: a Markdown summary of the run, a table of the day's incidents and one of its alerts.
"""

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from analytics import run
from analytics.adapters.lake import LocalLake
from analytics.adapters.lock import DEFAULT_TTL, LakeLocked, LockLost
from analytics.adapters.sources import Source, open_source
from analytics.config import Config, ConfigError
from analytics.config import load as load_config
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import (
    DayMerge,
    IngestCommit,
    IngestOptions,
    IngestSummary,
    MergeJob,
    MergeRunner,
    Partition,
    StagedPartition,
)
from analytics.publish.export.settings import HecSettings
from analytics.publish.reports.run_summary import alert_table, incident_table, run_markdown
from analytics.redact import redact, redact_log_records
from analytics.run import (
    DayOutcome,
    LakeCheckOutcome,
    completed,
    detection_lines,
    run_title,
    write_record,
)
from flows import tasks
from flows.lake_access import HeldLake, is_remote, shown_path, take_local_lock, take_s3_lock
from flows.runtime import default_task_runner

# A flow run logs through Prefect's handlers and, under a worker, without the CLI: its records are
# redacted from the moment this module is loaded (an endpoint URL may carry a password).
redact_log_records()

NIGHTLY_CRON = "30 2 * * *"
"""02:30 UTC: CloudTrail delivers most events within 15 minutes, so by then yesterday's late
deliveries are in today's folder; change it with ``keytrail serve --cron`` or prefect.yaml."""

DEFAULT_SINKS = ("ocsf-file",)
WAVE_PARTITIONS = 16
"""Read tasks submitted at a time (the next wave goes in while this one is collected). Their
results are small messages, so this bounds the task runner's queue, not the flow's memory."""


class StageFailed(RuntimeError):
    """A stage of the run failed; the message is ``<stage> failed: <reason>``."""

    def __init__(self, stage: str, reason: str) -> None:
        reason = redact(reason)  # shown in the CLI, the run's state, logs and artifacts
        super().__init__(f"{stage} failed: {reason}")
        self.stage = stage
        self.reason = reason


def yesterday_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@dataclass(frozen=True)
class RunSettings:
    """A run's parameters, resolved and checked once before anything is written."""

    source: Source
    lake: LocalLake
    config: Config
    sinks: tuple[tasks.SinkSpec, ...]
    endpoint_url: str | None = None
    inventory_regions: tuple[str, ...] = ()
    hec_token_block: str | None = None
    lock_ttl: dt.timedelta = DEFAULT_TTL
    remote: str | None = None
    """``s3://bucket/prefix`` when the lake is in S3 (``lake`` then works on it in place)."""
    lake_kms_key: str | None = None
    hec: HecSettings = field(default_factory=HecSettings)
    """The ``[hec]`` settings of the configuration with the run's ``hec_*`` parameters over them."""

    @property
    def lake_name(self) -> str:
        """The lake as the user named it."""
        return self.remote or str(self.lake.root)

    def shown(self, path: str) -> str:
        """A file of the working lake as the user finds it (in the bucket for an S3 lake)."""
        return shown_path(self.remote, self.lake, Path(path)) if self.remote else path


def resolve_settings(
    source: str,
    lake: str,
    config: str | None,
    sinks: Sequence[str] | None,
    endpoint_url: str | None,
    inventory_regions: Sequence[str] | None,
    hec_token_block: str | None,
    lock_ttl_hours: float,
    lake_kms_key: str | None = None,
    hec_overrides: dict[str, Any] | None = None,
) -> RunSettings:
    """Parse the flow's plain parameters; a typo fails here, before the lake is locked.
    ``hec_overrides`` are the run's HEC settings (``HecSettings`` field names; None: unset)."""
    try:
        settings = load_config(Path(config) if config else None)
    except ConfigError as exc:
        raise StageFailed("settings", str(exc)) from None
    hec = settings.hec.merged(**(hec_overrides or {}))
    problems = hec.problems()
    if problems:
        raise StageFailed("settings", "; ".join(problems))
    try:
        specs = tuple(tasks.SinkSpec.parse(text) for text in (sinks or DEFAULT_SINKS))
    except ValueError as exc:
        raise StageFailed("settings", str(exc)) from None
    if any(spec.kind == "splunk-hec" and not (spec.target or hec.url) for spec in specs):
        raise StageFailed(
            "settings",
            "sink splunk-hec needs a collector URL: splunk-hec=https://splunk:8088 "
            "or [hec] url in the configuration",
        )
    if lock_ttl_hours <= 0:
        raise StageFailed("settings", "lock_ttl_hours must be positive")
    remote = lake if is_remote(lake) else None
    if remote:
        from analytics.adapters.s3_lake import S3LakeUri, in_place_lake
        from analytics.adapters.sources import SourceError

        try:
            S3LakeUri.parse(remote)
        except SourceError as exc:
            raise StageFailed("settings", str(exc)) from None
        try:  # one listing of at most one key: an unusable bucket fails here, clearly
            working = in_place_lake(remote, endpoint_url=endpoint_url, kms_key_id=lake_kms_key)
        except SourceError as exc:
            raise StageFailed("lake", str(exc)) from None
    else:
        working = LocalLake(Path(lake))
    return RunSettings(
        source=open_source(source, endpoint_url=endpoint_url),
        lake=working,
        remote=remote,
        lake_kms_key=lake_kms_key,
        config=settings,
        sinks=specs,
        endpoint_url=endpoint_url,
        inventory_regions=tuple(inventory_regions or ()),
        hec_token_block=hec_token_block,
        lock_ttl=dt.timedelta(hours=lock_ttl_hours),
        hec=hec,
    )


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Turn any error inside a stage into :class:`StageFailed` naming the stage."""
    try:
        yield
    except (StageFailed, LakeLocked, LockLost):
        raise
    except Exception as exc:
        raise StageFailed(name, str(exc) or type(exc).__name__) from exc


@contextmanager
def _api_for_workers() -> Iterator[None]:
    """Let task-runner processes report to the API this flow uses.

    Task runs in Dask workers take their settings from the flow's settings context. Without
    ``PREFECT_API_URL`` the flow talks to a temporary server it started itself, and each worker
    would start another one (10 s each, and their task runs lost to the flow's UI); naming the
    flow's server in the context sends the workers to it.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    context = FlowRunContext.get()
    url = getattr(getattr(context, "client", None), "api_url", None)
    if PREFECT_API_URL.value() or not url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(url)}):
        yield


def _merge_runner() -> MergeRunner:
    """A commit's day merges run through the task runner (its threads, or Dask workers, which
    reach the lake — a folder they share, or the S3 lake — as they reach the staged files);
    each returns a small :class:`~analytics.ingest.pipeline.DayMerge`, and the flow commits."""

    def through_runner(jobs: list[MergeJob]) -> list[DayMerge]:
        futures = [tasks.merge_day.submit(job) for job in jobs]
        return [future.result() for future in futures]

    return through_runner


def ingest_stage(
    settings: RunSettings, selection: Selection, heartbeat: Callable[[], None] | None = None
) -> IngestSummary:
    """Plan, read (and stage) the partitions through the task runner, commit them in key order.

    Read tasks return small messages, so the flow's process holds no events: it commits every
    :attr:`~analytics.ingest.pipeline.IngestOptions.checkpoint_events` staged events and at the end.
    ``heartbeat`` (the lake lock's ``refresh``) is called as results arrive, so a long
    backfill's lock never looks stale to a run on another host.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    with stage("ingest"):
        plan = tasks.plan_ingest(settings.source, settings.lake, selection)
        staging = settings.lake.staging_area(plan.run_id)
        staging.remove_all_runs()  # what killed runs staged: this run holds the lock
    # workers=1: the fan-out is the task runner's; a partition is decoded in its task's process.
    options = IngestOptions(selection=selection, workers=1)
    waves = [
        plan.partitions[i : i + WAVE_PARTITIONS]
        for i in range(0, len(plan.partitions), WAVE_PARTITIONS)
    ]
    logger.info("ingest: %d partition(s) to read in %d wave(s) from %s",
                len(plan.partitions), len(waves), settings.source.describe())  # fmt: skip
    summary = IngestSummary(source=settings.source.describe())
    session = IngestCommit(settings.lake, options, summary, staging, _merge_runner())
    plan.counts.add_to(summary)
    failures: list[str] = []

    def submit(wave: list[Partition]) -> list[tuple[Partition, PrefectFuture[Any]]]:
        read = tasks.read_partition
        return [(p, read.submit(settings.source, p, options, plan.known_for(p), staging))
                for p in wave]  # fmt: skip

    # Wave k+1 is submitted while wave k is collected, so the runner always has work queued.
    batch: list[StagedPartition] = []
    try:
        with _api_for_workers():
            pending = submit(waves[0]) if waves else []
            for index in range(len(waves)):
                upcoming = submit(waves[index + 1]) if index + 1 < len(waves) else []
                for partition, future in pending:
                    try:
                        batch.append(future.result())
                    except Exception as exc:
                        failures.append(f"{partition.name}: {exc}")
                    if heartbeat is not None:
                        heartbeat()
                    if sum(p.events_staged for p in batch) >= options.checkpoint_events:
                        with stage("ingest"):
                            tasks.commit_ingest(session, batch)
                        batch = []
                pending = upcoming
            with stage("ingest"):
                tasks.commit_ingest(session, batch)
                tasks.finish_ingest(session)
    except BaseException:
        session.abandon()
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    logger.info(
        "ingest: %d log objects listed, %d read, %d already in the lake, %d quarantined, "
        "%d records quarantined; %d events written, %d duplicates dropped, %d eventID clashes "
        "quarantined, %d outside the range; %.1f s",
        summary.objects_seen, summary.objects_ingested, summary.objects_skipped,
        summary.objects_quarantined, summary.records_quarantined, summary.events_written,
        summary.duplicate_events_dropped, summary.event_id_clashes, summary.events_outside_range,
        summary.seconds,
    )  # fmt: skip
    for line in [*summary.quarantined[:20], *summary.clashes[:20]]:
        logger.warning("quarantined %s", line)
    if failures:
        raise StageFailed(
            "ingest",
            f"{len(failures)} partition(s) could not be read — {failures[0]} (the others are "
            f"committed; a rerun reads only what is missing)",
        )
    return summary


def lake_check_stage(settings: RunSettings) -> LakeCheckOutcome:
    """Check the lake after ingest; findings are logged and reported, never failing the run."""
    logger = get_run_logger()
    result = LakeCheckOutcome.of(settings.lake)
    if result.error is not None:
        logger.warning("lake check could not run: %s", result.error)
    elif result.clean:
        logger.info("lake check: clean; %d day(s), %d event file(s), %d events",
                    result.days, result.event_files, result.events)  # fmt: skip
    else:
        counts = sorted(result.finding_counts.items())
        logger.warning("lake check: %s", ", ".join(f"{n} {kind}" for kind, n in counts))
        for line in result.finding_lines():
            logger.warning("lake check: %s", line)
    return result


def process_day(
    settings: RunSettings, day: dt.date, lock: HeldLake, force: bool = False
) -> DayOutcome:
    """Features → baselines → detect → publish → export for one day, then its completion record.

    Skipped, returning the earlier record, when the day completed before with the same inputs.
    """
    logger = get_run_logger()
    lake = settings.lake
    fingerprint = inputs_fingerprint(settings, day)
    earlier = None if force else completed(lake, day, fingerprint)
    if earlier is not None:
        logger.info("%s: already complete with the same inputs; nothing to do", day)
        return earlier
    if not lake.event_files(day):
        raise StageFailed(
            "detect",
            f"no events for {day} in {settings.lake_name}: the trail delivered none for that day "
            f"(check the source, and whether the trail was stopped)",
        )
    started = time.perf_counter()
    with stage("features"):
        window = tasks.build_features(lake, day, settings.config)
    logger.info("features: %d day(s) recomputed", len(window.recomputed))
    with stage("baselines"):
        baselines = tasks.summarise_baselines(window, settings.config)
    logger.info("baselines %s..%s: %d day(s) of history, %d (key, actor) pairs, %d actors, "
                "%d keys", baselines.window_first, baselines.window_last, baselines.history_days,
                baselines.pair_profile.height, baselines.actor_profile.height,
                baselines.key_profile.height)  # fmt: skip
    with stage("detect"):
        detection = tasks.detect_day(lake, window, baselines, settings.config)
    for line in detection_lines(detection.summary):
        logger.info("%s", line)
    for expired in detection.summary.get("expired_suppressions", []):
        logger.warning("suppression %s has expired and no longer applies", expired)
    lock.refresh()
    with stage("publish"):
        published = tasks.publish_day(lake, day, settings.config, settings.inventory_regions,
                                      settings.endpoint_url)  # fmt: skip
    logger.info("publish: %d report files, %s", published.files, published.report_html)
    lock.refresh()
    exports = export_stage(settings, day)
    outcome = DayOutcome.scored(
        detection,
        fingerprint=fingerprint,
        history_days=baselines.history_days,
        report_html=settings.shown(published.report_html),
        exports=exports,
        seconds=round(time.perf_counter() - started, 3),
    )
    write_record(lake, outcome)
    return outcome


def inputs_fingerprint(settings: RunSettings, day: dt.date) -> str:
    """The day's inputs under this run's settings (:func:`analytics.run.inputs_fingerprint`)."""
    return run.inputs_fingerprint(settings.lake, day, settings.config, settings.sinks,
                                  settings.inventory_regions)  # fmt: skip


def export_stage(settings: RunSettings, day: dt.date) -> list[dict[str, Any]]:
    """Send the day to every sink; a sink that refuses does not stop the others, then fails the
    stage with every refusal."""
    logger = get_run_logger()
    exports: list[dict[str, Any]] = []
    refused: list[str] = []
    for spec in settings.sinks:
        try:
            export = tasks.export_day(settings.lake, day, spec, settings.endpoint_url,
                                      settings.hec_token_block, settings.hec)  # fmt: skip
        except Exception as exc:
            refused.append(str(exc))
            continue
        exports.append(export)
        logger.info("export %s → %s: sent %d, already sent %d, suppressed (not exported) %d",
                    spec.kind, export["destination"], export["sent"], export["already_sent"],
                    export["suppressed_not_exported"])  # fmt: skip
    if refused:
        raise StageFailed("export", "; ".join(refused))
    return exports


# --- artifacts ----------------------------------------------------------------------------------


def publish_artifacts(
    kind: str,
    title: str,
    ingest: IngestSummary | None,
    days: Sequence[DayOutcome],
    error: str | None = None,
    lake_check: LakeCheckOutcome | None = None,
) -> None:
    """The run's Markdown summary, its incidents table and its alerts table, under stable keys
    (one history each). Incidents come first: they are what an analyst triages."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(
        markdown=run_markdown(title, ingest, days, error, lake_check),
        key=f"keytrail-{kind}-summary",
        description=title,
    )
    if days:
        create_table_artifact(table=incident_table(days), key=f"keytrail-{kind}-incidents",
                              description=f"Incidents — {title}")  # fmt: skip
        create_table_artifact(table=alert_table(days), key=f"keytrail-{kind}-alerts",
                              description=f"Alerts — {title}")  # fmt: skip


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def lock_command(kind: str, detail: str) -> str:
    from prefect.runtime import flow_run

    return f"keytrail {kind} {detail} (flow run {flow_run.name or flow_run.id})"


def hold_lake(settings: RunSettings, command: str, wait_seconds: float = 0.0) -> HeldLake:
    """Take the lake lock (a folder's, or an S3 lake's lock object), waiting up to
    ``wait_seconds`` for another run's, and logging a stale lock this run recovered from."""
    logger = get_run_logger()
    if settings.remote:
        with stage("lake"):
            remote = take_s3_lock(settings.remote, command, endpoint_url=settings.endpoint_url,
                                  kms_key_id=settings.lake_kms_key, ttl=settings.lock_ttl,
                                  wait_seconds=wait_seconds, log=logger.warning)  # fmt: skip
        return HeldLake(remote)
    settings.lake.root.mkdir(parents=True, exist_ok=True)
    return HeldLake(take_local_lock(settings.lake.root, command, settings.lock_ttl,
                                    wait_seconds, logger.warning))  # fmt: skip


@contextmanager
def held(settings: RunSettings, command: str, wait_seconds: float = 0.0) -> Iterator[HeldLake]:
    """:func:`hold_lake` for a block: released however it ends."""
    lock = hold_lake(settings, command, wait_seconds)
    try:
        yield lock
    finally:
        with stage("lake"):
            lock.release()


def _nightly_run_name() -> str:
    from prefect.runtime import flow_run

    day = flow_run.parameters.get("date") or yesterday_utc()
    return f"nightly-{day}"


@flow(name="keytrail-nightly", flow_run_name=_nightly_run_name, task_runner=default_task_runner(),
      description="Ingest a day of CloudTrail, find unusual KMS use, publish, export.")  # fmt: skip
def nightly(
    source: str,
    lake: str,
    date: dt.date | None = None,
    config: str | None = None,
    sinks: list[str] | None = None,
    endpoint_url: str | None = None,
    ingest_from: dt.date | None = None,
    force: bool = False,
    inventory_regions: list[str] | None = None,
    hec_token_block: str | None = None,
    lock_ttl_hours: float = DEFAULT_TTL.total_seconds() / 3600,
    lock_wait_seconds: float = 0.0,
    lake_kms_key: str | None = None,
    hec_index: str | None = None,
    hec_sourcetype: str | None = None,
    hec_acks: bool | None = None,
    hec_ack_timeout_seconds: float | None = None,
    hec_ca_bundle: str | None = None,
    hec_verify: bool | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline for ``date`` (default: yesterday, UTC).

    ``ingest_from`` reads earlier days too (a first run filling its baseline window; the demo);
    ``force`` recomputes a day that already completed with the same inputs. The ``hec_*``
    parameters override the ``[hec]`` section of the configuration for a ``splunk-hec`` sink.
    ``lock_wait_seconds`` waits that long for another run's lake lock instead of failing at once.
    """
    day = date or yesterday_utc()
    first = ingest_from or day
    if first > day:
        raise StageFailed("settings", f"ingest_from {first} is after the scored day {day}")
    hec = {"index": hec_index, "sourcetype": hec_sourcetype, "acks": hec_acks,
           "ack_timeout_seconds": hec_ack_timeout_seconds, "ca_bundle": hec_ca_bundle,
           "verify": hec_verify}  # fmt: skip
    settings = resolve_settings(source, lake, config, sinks, endpoint_url, inventory_regions,
                                hec_token_block, lock_ttl_hours, lake_kms_key, hec)  # fmt: skip
    title = run_title("nightly", str(day), settings.source.describe(), settings.lake_name)
    ingest: IngestSummary | None = None
    outcome: DayOutcome | None = None
    integrity: LakeCheckOutcome | None = None
    try:
        with held(settings, lock_command("nightly", day.isoformat()), lock_wait_seconds) as lock:
            ingest = ingest_stage(settings, Selection(first, day), lock.refresh)
            lock.refresh()
            integrity = lake_check_stage(settings)
            lock.refresh()
            outcome = process_day(settings, day, lock, force)
    except Exception as exc:
        publish_artifacts("nightly", title, ingest, [outcome] if outcome else [], str(exc),
                          lake_check=integrity)  # fmt: skip
        raise
    publish_artifacts("nightly", title, ingest, [outcome], lake_check=integrity)
    return {
        "flow_run_id": current_flow_run_id(),
        "date": day.isoformat(),
        "source": settings.source.describe(),
        "lake": settings.lake_name,
        "ingest": ingest.to_dict() if ingest else None,
        "lake_check": integrity.to_dict() if integrity else None,
        "days": [outcome.to_dict()],
    }
