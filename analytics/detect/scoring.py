"""Detection for one day: features → baselines → rules + isolation forest → alerts.

Pure with respect to orchestration: it reads and writes only the lake it is given, and the CLI
and the Prefect flows call it the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analytics.adapters.lake import LocalLake, partition_date, without_partition_column
from analytics.adapters.lake_fs import LakeFile
from analytics.config import Config
from analytics.detect import baselines as bl
from analytics.detect import features, history, incidents, model
from analytics.detect.alerts import DetectorInfo, assemble, empty_alerts
from analytics.detect.detectors._common import rule_events
from analytics.detect.detectors.base import DetectionContext, conform_findings
from analytics.detect.detectors.registry import ALL_DETECTORS
from analytics.lake import schema as s

MODEL_INFO = DetectorInfo(
    id=model.DETECTOR_ID,
    title="Unusual use of a KMS key",
    severity="medium",
    mitre_attack=("T1530", "T1078"),
    runbook=(
        "1. Read the reason: which features drove the score and by how much. "
        "2. Open the evidence events and confirm who made them (actor, session, source IP, "
        "user agent). "
        "3. Ask the owner of the actor whether the change in volume, origin or hour was planned. "
        "4. If not: revoke the session's credentials, review the key policy and grants, and "
        "find out what the decrypted data protects. "
        "5. If it was planned: add a time-bounded suppression with an owner and a reason."
    ),
)


@dataclass
class DetectionResult:
    day: dt.date
    alerts: pl.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    incidents: pl.DataFrame = field(default_factory=incidents.empty_incidents)
    files_read: list[Path] = field(default_factory=list)  # under lake.root (see its docs)
    """Every lake file the run read data from, once each: the day's events, the window's
    features and history tables, earlier alerts, and the events of any day whose derived files
    had to be recomputed. (Footers read to list a partition's usable files are not counted.)"""


def alerts_key(day: dt.date) -> str:
    """The day's alerts file inside the lake."""
    return f"alerts/{s.EVENT_DATE}={day.isoformat()}/alerts.parquet"


def incidents_key(day: dt.date) -> str:
    """The day's incidents file inside the lake."""
    return f"incidents/{s.EVENT_DATE}={day.isoformat()}/incidents.parquet"


def alerts_path(lake: LocalLake, day: dt.date) -> Any:
    """:func:`alerts_key` in a lake folder."""
    return lake.root / alerts_key(day)


def incidents_path(lake: LocalLake, day: dt.date) -> Any:
    return lake.root / incidents_key(day)


def scored_key(day: dt.date) -> str:
    """``_state/scored/D.json``: the record that ``day`` was scored, and with what result.

    A day without alerts has no alerts file (a zero-row file in a partition is noise to every
    engine that lists the table), so this record, not the file, says the day was scored."""
    return f"_state/scored/{day.isoformat()}.json"


def scored_path(lake: LocalLake, day: dt.date) -> Path:
    """:func:`scored_key` in a lake folder."""
    return lake.root / scored_key(day)


def was_scored(lake: LocalLake, day: dt.date) -> bool:
    """Whether ``day`` was scored: its record, or (in a lake written before the records) its
    alerts file, which was then written even when empty."""
    return lake.store.exists(scored_key(day)) or lake.store.exists(alerts_key(day))


def scored_days(lake: LocalLake) -> list[dt.date]:
    """Every scored day, oldest first (see :func:`was_scored`)."""
    days: set[dt.date] = set()
    for file in lake.store.files("_state/scored"):
        stem, _, suffix = file.name.rpartition(".")
        if suffix == "json":
            with contextlib.suppress(ValueError):
                days.add(dt.date.fromisoformat(stem))
    for file in lake.store.files("alerts", recursive=True):
        folder, _, name = file.relative.rpartition("/")
        day = partition_date(folder.rpartition("/")[2])
        if name == "alerts.parquet" and day is not None:
            days.add(day)
    return sorted(days)


def _write_day(
    lake: LocalLake, day: dt.date, day_incidents: pl.DataFrame, alerts: pl.DataFrame
) -> None:
    """Replace the day's incidents and alerts files, then record that the day was scored.

    Incidents first: an alerts file never names an incident that is not in the lake. A table
    with no rows has no file (a rerun that finds nothing removes the earlier run's file, alerts
    before incidents for the same reason); the record in ``_state/`` is written last, as the
    state always is."""
    if day_incidents.height:
        table = day_incidents.to_arrow().cast(s.INCIDENT_SCHEMA)
        lake.store.write_parquet(incidents_key(day), without_partition_column(table))
    if alerts.height:
        table = alerts.to_arrow().cast(s.ALERT_SCHEMA)
        lake.store.write_parquet(alerts_key(day), without_partition_column(table))
    else:
        _remove(lake, alerts_key(day))
    if not day_incidents.height:
        _remove(lake, incidents_key(day))
    record = {"day": day.isoformat(), "alerts": alerts.height, "incidents": day_incidents.height}
    lake.store.write_bytes(scored_key(day), json.dumps(record).encode())


def _remove(lake: LocalLake, key: str) -> None:
    """Delete a day's file, and in a folder lake its folder if nothing else is left in it."""
    lake.store.delete(key)
    if not lake.store.remote:
        with contextlib.suppress(OSError):  # not empty, or absent
            Path(lake.store.path(key)).parent.rmdir()


def _day_events(lake: LocalLake, day: dt.date, reads: list[LakeFile]) -> pl.LazyFrame:
    """Events of ``day``: only files readable in the event schema (the lake notes the others in
    ``skipped_files``). Earlier days are read through their history tables, never as events."""
    files = lake.event_files(day)
    reads.extend(files)
    if not files:
        return _empty_events().lazy()
    return lake.store.scan_days(files, s.EVENT_COLUMNS, s.EVENT_SCHEMA)


def history_dates(lake: LocalLake, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days of ``first``..``last`` the lake holds: days with Parquet files in their event
    partition (listed, not opened, so counting the window costs no footer reads).

    Any CloudTrail event counts, not only KMS calls, so a quiet day is still history. Ingest
    records the event dates of each object it read, not the days a run covered, so a day whose
    log files held no event at all cannot be told from a day never ingested; it is not counted.
    """
    days = (first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return [day for day in days if lake.listed_event_files(day)]


def warming_up(
    needs: list[tuple[str, int]],
    day: dt.date,
    present: list[dt.date],
    lake_name: str,
) -> list[dict[str, Any]]:
    """Each detector (id, days needed) whose history falls short, with the ingest that fills it.

    The backfill starts at the first day missing from the ``needed`` days before ``day`` and
    ends the day before it; ingest is exactly-once, so re-reading days already held is safe.
    """
    held = set(present)
    short = []
    for detector_id, needed in needs:
        if len(present) >= needed:
            continue
        wanted = [day - dt.timedelta(days=n) for n in range(needed, 0, -1)]
        start = next((d for d in wanted if d not in held), wanted[0])
        end = day - dt.timedelta(days=1)
        short.append(
            {
                "id": detector_id,
                "history_days": len(present),
                "needed_days": needed,
                "backfill": (
                    f"keytrail ingest SOURCE --lake {shlex.quote(lake_name)} "
                    f"--start {start.isoformat()} --end {end.isoformat()}"
                ),
            }
        )
    return short


def history_needs(config: Config) -> list[tuple[str, int]]:
    """Each enabled detector's ID and the days of history it needs with these settings."""
    needs = [
        (d.id, d.needed_days(config.detector_settings(d.id, d.defaults)))
        for d in ALL_DETECTORS
        if d.id not in config.disabled_detectors
    ]
    if model.DETECTOR_ID not in config.disabled_detectors:
        needs.append((model.DETECTOR_ID, config.model.min_history_days))
    return needs


def warm_up(
    lake: LocalLake, day: dt.date, config: Config, lake_name: str | None = None
) -> list[dict[str, Any]]:
    """:func:`warming_up` for ``day`` as :func:`run` computes it, for readers that do not score
    (the day's report), so both say the same."""
    first, last = bl.window(day, config.baseline_window_days)
    present = history_dates(lake, first, last)
    return warming_up(history_needs(config), day, present, lake_name or lake.name)


@dataclass(frozen=True)
class FeatureWindow:
    """The features a scored day needs: its own and those of its baseline window.

    Computed once per run (:func:`feature_window`) and passed on, so the nightly flow's features
    and baselines stages and detection work on the same values instead of each reading them again.
    """

    day: dt.date
    recomputed: list[dt.date]
    """Days whose feature files were (re)written to bring the window up to date."""
    rows: pl.DataFrame
    """Feature rows of the window's first day through ``day``."""
    present: list[dt.date]
    """Days of the window before ``day`` that hold events."""
    seconds: float
    files_read: tuple[LakeFile, ...] = ()
    """Lake files opened to bring the features up to date and read them."""


def window_dates(day: dt.date, config: Config) -> list[dt.date]:
    """The scored day's baseline window and the day itself, oldest first."""
    first, _ = bl.window(day, config.baseline_window_days)
    return [first + dt.timedelta(days=i) for i in range((day - first).days + 1)]


def feature_window(lake: LocalLake, day: dt.date, config: Config) -> FeatureWindow:
    """Bring the window's feature files up to date and read them: the features stage."""
    started = time.perf_counter()
    first, last = bl.window(day, config.baseline_window_days)
    reads: list[LakeFile] = []
    recomputed = features.ensure_days(lake, window_dates(day, config), reads)
    rows = features.scan(lake, first, day, reads).drop(features.NOT_FOR_DETECTION).collect()
    present = history_dates(lake, first, last)
    return FeatureWindow(day, recomputed, rows, present, time.perf_counter() - started,
                         tuple(reads))  # fmt: skip


def day_baselines(window: FeatureWindow, config: Config) -> bl.Baselines:
    """The scored day's baselines from the days before it only: the baselines stage."""
    return bl.build(window.rows.lazy(), window.day, config.baseline_window_days,
                    len(window.present))  # fmt: skip


def _empty_events() -> pl.DataFrame:
    frame = pl.from_arrow(s.EVENT_SCHEMA.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def run(
    lake: LocalLake,
    day: dt.date,
    config: Config | None = None,
    dry_run: bool = False,
    today: dt.date | None = None,
    lake_name: str | None = None,
    window: FeatureWindow | None = None,
    baselines: bl.Baselines | None = None,
) -> DetectionResult:
    """Detect for ``day`` and (unless ``dry_run``) replace that day's alerts file atomically.

    ``lake_name`` is the lake as the user names it (a path or ``s3://…``), quoted in the backfill
    commands of ``summary["warming_up"]``; by default the local lake's directory. ``window`` and
    ``baselines`` are the day's features and baselines when an earlier stage of the same run has
    them (:func:`feature_window`, :func:`day_baselines`); otherwise they are computed here.
    """
    config = config or Config()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    first, last = bl.window(day, config.baseline_window_days)
    days = window_dates(day, config)
    if window is None or window.day != day:
        window = feature_window(lake, day, config)
    timings["features"] = window.seconds
    reads: list[LakeFile] = list(window.files_read)
    mark = time.perf_counter()
    if baselines is None or baselines.day != day:
        baselines = day_baselines(window, config)
    timings["baselines"] = time.perf_counter() - mark
    feature_rows, present, recomputed = window.rows, window.present, window.recomputed
    day_features = feature_rows.filter(pl.col(s.EVENT_DATE) == day)
    history_features = feature_rows.filter(pl.col(s.EVENT_DATE) < day)

    mark = time.perf_counter()
    day_events = rule_events(_day_events(lake, day, reads)).collect()
    # The day's own history tables come from the events just read; tomorrow reads them back.
    history_recomputed = history.ensure_days(lake, days, {day: day_events}, reads)
    past = history.scan(lake, first, last, reads)
    timings["history"] = time.perf_counter() - mark

    mark = time.perf_counter()
    org_accounts = frozenset(config.org_accounts) or _org_accounts(feature_rows)
    findings: list[tuple[DetectorInfo, pl.DataFrame]] = []
    per_detector: Counter[str] = Counter()
    for detector in ALL_DETECTORS:
        if detector.id in config.disabled_detectors:
            continue
        settings = config.detector_settings(detector.id, detector.defaults)
        context = DetectionContext(
            day=day,
            events=day_events,
            # Only the tables the rule declared: reading another one fails here, not silently.
            history={table.name: past[table.name] for table in detector.history},
            history_days=baselines.history_days,
            org_accounts=org_accounts,
            settings=settings,
        )
        found = conform_findings(detector, detector.detect(context))
        info = DetectorInfo(detector.id, detector.title, detector.severity,
                            detector.mitre_attack, detector.runbook)  # fmt: skip
        findings.append((info, found))
    timings["rules"] = time.perf_counter() - mark

    mark = time.perf_counter()
    model_result = (
        model.score_day(day_features, history_features, baselines, config.model, day_events)
        if model.DETECTOR_ID not in config.disabled_detectors
        else model.ModelResult(conform_findings_empty(), 0, 0, "disabled in configuration")
    )
    findings.append((MODEL_INFO, model_result.findings))
    timings["model"] = time.perf_counter() - mark

    assembled = assemble(findings, day, day_events, config, today or dt.datetime.now(dt.UTC).date())
    mark = time.perf_counter()
    lookback_days = config.incidents.lookback().days
    earlier = read_alerts_between(lake, day - dt.timedelta(days=lookback_days),
                                  day - dt.timedelta(days=1), reads)  # fmt: skip
    grouping = incidents.group(assembled.alerts, earlier, day, config.incidents)
    alerts = incidents.label_alerts(assembled.alerts, grouping)
    timings["incidents"] = time.perf_counter() - mark
    if not dry_run:
        _write_day(lake, day, grouping.incidents, alerts)
    active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null())
    for row in active.group_by(s.DETECTOR).len().iter_rows():
        per_detector[row[0]] = row[1]
    summary = {
        "date": day.isoformat(),
        "dry_run": dry_run,
        "alerts": active.height,
        "alerts_by_detector": dict(sorted(per_detector.items())),
        "alerts_by_severity": {
            sev: active.filter(pl.col(s.SEVERITY) == sev).height for sev in s.SEVERITIES
        },
        "incidents": grouping.incidents.height,
        "incidents_by_severity": {
            sev: grouping.incidents.filter(pl.col(s.SEVERITY) == sev).height for sev in s.SEVERITIES
        },
        "alerts_in_incidents": active.filter(pl.col(s.INCIDENT_ID).is_not_null()).height,
        "to_triage": incidents.triage_count(grouping.incidents, alerts),
        "suppressed": assembled.suppressed,
        "expired_suppressions": [x.id for x in assembled.expired_suppressions],
        "events_scored": day_events.height,
        "rows_scored": model_result.rows_scored,
        "rows_trained": model_result.rows_trained,
        "rows_without_history": model_result.rows_without_history,
        "history_days": baselines.history_days,
        "model_note": model_result.silent_reason,
        "warming_up": warming_up(history_needs(config), day, present, lake_name or lake.name),
        "feature_days_recomputed": len(recomputed),
        "history_days_recomputed": len(history_recomputed),
        "skipped_files": lake.skipped_files(),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    read_once = {file.relative: file for file in reads}
    summary["bytes_read"] = sum(file.size for file in read_once.values())
    files_read = sorted(lake.root / relative for relative in read_once)
    return DetectionResult(day, alerts, summary, grouping.incidents, files_read)


def conform_findings_empty() -> pl.DataFrame:
    from analytics.detect.detectors.base import empty_findings

    return empty_findings()


def _org_accounts(feature_rows: pl.DataFrame) -> frozenset[str]:
    """Without a configured list, the accounts that own keys seen in the window are the org's."""
    owners = feature_rows.get_column("key_account_id").drop_nulls().unique().to_list()
    return frozenset(str(a) for a in owners)


def read_alerts(lake: LocalLake, day: dt.date, reads: list[LakeFile] | None = None) -> pl.DataFrame:
    """The alerts of ``day`` in today's alert schema (older files gain the newer columns); the
    file read is added to ``reads``."""
    file = lake.lake_file(alerts_key(day))
    if file is None:
        # An unreadable file is noted in the lake's skipped files; rerunning detect rewrites it.
        return empty_alerts()
    if reads is not None:
        reads.append(file)
    frame = pl.from_arrow(s.conform_alerts(lake.store.read_day_table(file, s.ALERT_SCHEMA)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def read_alerts_between(
    lake: LocalLake, first: dt.date, last: dt.date, reads: list[LakeFile] | None = None
) -> pl.DataFrame:
    """Alerts of the days ``first``..``last`` (inclusive); days never scored contribute none."""
    frames = [
        read_alerts(lake, first + dt.timedelta(days=offset), reads)
        for offset in range((last - first).days + 1)
    ]
    frames = [f for f in frames if f.height]
    return pl.concat(frames) if frames else empty_alerts()


def read_incidents(lake: LocalLake, day: dt.date) -> pl.DataFrame:
    """The incidents file of ``day`` (empty when the day was not scored)."""
    file = lake.store.file(incidents_key(day))
    if file is None:
        return incidents.empty_incidents()
    table = lake.store.read_day_table(file, s.INCIDENT_SCHEMA)
    frame = pl.from_arrow(table.select(s.INCIDENT_SCHEMA.names).cast(s.INCIDENT_SCHEMA))
    assert isinstance(frame, pl.DataFrame)
    return frame
