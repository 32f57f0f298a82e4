"""What a run of the pipeline produced, as typed values, and when a day need not run again.

The nightly and backfill flows pass these between their stages and hand them to the run's
summary (:mod:`analytics.publish.reports.run_summary`); ``to_dict`` is the JSON a flow returns and
the CLI prints, so the orchestrator stays a sequencer and the values are tested here without it.

A day is *complete* when its completion record (``LAKE/_state/days/D.json``, written after its
last stage) carries the fingerprint of its current inputs: the same event files in the baseline
window, the same configuration, sinks and inventory regions. A rerun would then compute the same
alerts and reports, so it is skipped instead of rewriting identical files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics.adapters.lake import LocalLake
from analytics.lake import schema as s

if TYPE_CHECKING:
    import polars as pl

    from analytics.config import Config
    from analytics.detect.scoring import DetectionResult

TOP_INCIDENTS = 5
"""Incidents a day's result names (a flow's result must stay small)."""


def run_title(kind: str, span: str, source: str, lake: str) -> str:
    """``keytrail nightly 2026-11-15 — SOURCE → LAKE``: the summary artifact's heading."""
    return f"keytrail {kind} {span} — {source} → {lake}"


def top_incidents(incidents: pl.DataFrame, limit: int = TOP_INCIDENTS) -> list[dict[str, Any]]:
    """The most severe incidents (they come sorted) as small plain dicts."""
    return [
        {
            "incident_id": row[s.INCIDENT_ID],
            "severity": row[s.SEVERITY],
            "title": row[s.TITLE],
            "alert_count": row[s.ALERT_COUNT],
        }
        for row in incidents.head(limit).iter_rows(named=True)
    ]


def warming_lines(
    warming_up: Iterable[Mapping[str, Any]], text: Callable[[object], str] = str
) -> list[str]:
    """One line per detector still gathering history, with the backfill that would finish it;
    ``text`` makes the untrusted parts safe for where the line goes (Markdown, a log)."""
    return [
        f"warming up: {text(w['id'])} has {w['history_days']} of {w['needed_days']} day(s) of "
        f"history; backfill: {text(w['backfill'])}"
        for w in warming_up
    ]


def detection_lines(summary: Mapping[str, Any]) -> list[str]:
    """What a day's detection (:func:`analytics.detect.scoring.run`'s summary) says in the run's
    log: its counts, the model's note, and each detector still warming up."""
    by_severity = ", ".join(
        f"{count} {name}" for name, count in summary["alerts_by_severity"].items() if count
    )
    lines = [
        f"detect {summary['date']}: {summary['alerts']} alert(s), {summary['suppressed']} "
        f"suppressed, {summary['events_scored']} events scored; by severity: "
        f"{by_severity or 'none'}"
    ]
    if summary.get("model_note"):
        lines.append(f"model: {summary['model_note']}")
    return lines + warming_lines(summary.get("warming_up", []))


# --- stage results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LakeCheckOutcome:
    """The lake check after ingest (:func:`analytics.lake.check.check_lake`), or why it could not
    run (``clean`` is then None): reported, never failing a run."""

    clean: bool | None
    days: int = 0
    event_files: int = 0
    events: int = 0
    state_objects: int = 0
    finding_counts: dict[str, int] = field(default_factory=dict)
    findings: tuple[dict[str, str], ...] = ()
    quarantine: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, lake: LocalLake) -> LakeCheckOutcome:
        """Check ``lake``; a check that cannot run is an outcome (it must not cost the night's
        alerts, and readers skip what a check would find unreadable)."""
        from analytics.lake.check import check_lake

        started = time.perf_counter()
        try:
            report = check_lake(lake)
        except Exception as exc:
            return cls(clean=None, error=str(exc) or type(exc).__name__)
        return cls.from_dict(
            {**report.to_dict(), "seconds": round(time.perf_counter() - started, 3)}
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LakeCheckOutcome:
        if data.get("error"):
            return cls(clean=None, error=str(data["error"]))
        return cls(
            clean=data.get("clean"),
            days=data.get("days", 0),
            event_files=data.get("event_files", 0),
            events=data.get("events", 0),
            state_objects=data.get("state_objects", 0),
            finding_counts=dict(data.get("finding_counts") or {}),
            findings=tuple(dict(f) for f in data.get("findings") or ()),
            quarantine=dict(data.get("quarantine") or {}),
            seconds=data.get("seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"clean": None, "error": self.error}
        return {
            "clean": self.clean,
            "days": self.days,
            "event_files": self.event_files,
            "events": self.events,
            "state_objects": self.state_objects,
            "finding_counts": dict(self.finding_counts),
            "findings": [dict(f) for f in self.findings],
            "quarantine": dict(self.quarantine),
            "seconds": self.seconds,
        }

    def finding_lines(self, limit: int = 20) -> list[str]:
        """``kind: path: detail`` for the first ``limit`` findings."""
        return [f"{f['kind']}: {f['path']}: {f['detail']}" for f in self.findings[:limit]]


@dataclass(frozen=True)
class PublishResult:
    """The day's reports as written (:func:`publish`)."""

    report_html: str
    files: int
    headline: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    warming_up: tuple[Any, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublishResult:
        return cls(
            report_html=str(data["report_html"]),
            files=int(data["files"]),
            headline=dict(data.get("headline") or {}),
            notes=tuple(data.get("notes") or ()),
            warming_up=tuple(data.get("warming_up") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_html": self.report_html,
            "files": self.files,
            "headline": dict(self.headline),
            "notes": list(self.notes),
            "warming_up": list(self.warming_up),
        }


def publish(
    lake: LocalLake,
    day: dt.date,
    config: Config,
    inventory_regions: Sequence[str] = (),
    endpoint_url: str | None = None,
) -> PublishResult:
    """Write the day's reports, with KMS's inventory of ``inventory_regions`` when given (its
    partial failures become notes in the report; no credentials at all is an error)."""
    from analytics.publish import reports

    snapshots: list[Any] = []
    notes: list[str] = []
    if inventory_regions:
        from analytics.adapters.kms_inventory import InventoryError, snapshot

        regions = sorted(set(inventory_regions))
        try:
            found = snapshot(regions, endpoint_url=endpoint_url)
        except InventoryError as exc:
            raise RuntimeError(f"KMS inventory: {exc}") from None
        snapshots = list(found.keys)
        notes = [f"KMS inventory of {', '.join(regions)}: {len(found.keys)} key(s)"]
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
    return PublishResult(
        report_html=str(files["report.html"]),
        files=len(files),
        headline=dict(report.headline),
        notes=tuple(report.notes),
        warming_up=tuple(report.warming_up),
    )


@dataclass(frozen=True)
class DayOutcome:
    """What scoring one day produced, or that it was skipped (unchanged since it completed) or
    empty (no events: left incomplete by a backfill).

    :meth:`record` is the completion record on disk; :meth:`to_dict` what a flow returns for the
    day. ``alert_rows`` and ``incident_rows`` are for the run's table artifacts only.
    """

    date: dt.date
    alerts: int = 0
    suppressed: int = 0
    alerts_by_severity: dict[str, int] = field(default_factory=dict)
    alerts_by_detector: dict[str, int] = field(default_factory=dict)
    incident_count: int = 0
    incidents_by_severity: dict[str, int] = field(default_factory=dict)
    to_triage: int = 0
    top_incidents: tuple[dict[str, Any], ...] = ()
    events_scored: int = 0
    history_days: int = 0
    model_note: str | None = None
    warming_up: tuple[dict[str, Any], ...] = ()
    report_html: str = ""
    exports: tuple[dict[str, Any], ...] = ()
    seconds: float = 0.0
    completed_at: str | None = None
    fingerprint: str | None = None
    skipped: bool = False
    empty: bool = False
    alert_rows: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    incident_rows: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def scored(
        cls,
        detection: DetectionResult,
        *,
        fingerprint: str,
        history_days: int,
        report_html: str,
        exports: Sequence[Mapping[str, Any]],
        seconds: float,
    ) -> DayOutcome:
        """A day just scored, from its detection and what publishing and exporting did."""
        from analytics.publish.reports.run_summary import alert_rows, incident_rows

        summary = detection.summary
        return cls(
            date=detection.day,
            completed_at=dt.datetime.now(dt.UTC).isoformat(),
            fingerprint=fingerprint,
            alerts=summary["alerts"],
            suppressed=summary["suppressed"],
            alerts_by_severity=dict(summary["alerts_by_severity"]),
            alerts_by_detector=dict(summary["alerts_by_detector"]),
            incident_count=summary["incidents"],
            incidents_by_severity=dict(summary["incidents_by_severity"]),
            to_triage=summary["to_triage"],
            top_incidents=tuple(top_incidents(detection.incidents)),
            events_scored=summary["events_scored"],
            history_days=history_days,
            model_note=summary.get("model_note"),
            warming_up=tuple(summary.get("warming_up", [])),
            report_html=report_html,
            exports=tuple(dict(e) for e in exports),
            seconds=seconds,
            alert_rows=tuple(alert_rows(detection.alerts)),
            incident_rows=tuple(incident_rows(detection.incidents)),
        )

    @classmethod
    def nothing_to_score(cls, day: dt.date) -> DayOutcome:
        """A day without events in the lake."""
        return cls(date=day, empty=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DayOutcome:
        """From a completion record or :meth:`to_dict` (keys a record lacks take defaults)."""
        day = dt.date.fromisoformat(str(data["date"]))
        if data.get("empty"):
            return cls.nothing_to_score(day)
        return cls(
            date=day,
            completed_at=data.get("completed_at"),
            fingerprint=data.get("fingerprint"),
            alerts=data.get("alerts", 0),
            suppressed=data.get("suppressed", 0),
            alerts_by_severity=dict(data.get("alerts_by_severity") or {}),
            alerts_by_detector=dict(data.get("alerts_by_detector") or {}),
            incident_count=data.get("incident_count", 0),
            incidents_by_severity=dict(data.get("incidents_by_severity") or {}),
            to_triage=data.get("to_triage", 0),
            top_incidents=tuple(data.get("top_incidents") or ()),
            events_scored=data.get("events_scored", 0),
            history_days=data.get("history_days", 0),
            model_note=data.get("model_note"),
            warming_up=tuple(data.get("warming_up") or ()),
            report_html=data.get("report_html", ""),
            exports=tuple(data.get("exports") or ()),
            seconds=data.get("seconds", 0.0),
            skipped=bool(data.get("skipped", False)),
        )

    def record(self) -> dict[str, Any]:
        """The completion record's fields, in their order on disk."""
        return {
            "date": self.date.isoformat(),
            "completed_at": self.completed_at,
            "fingerprint": self.fingerprint,
            "alerts": self.alerts,
            "suppressed": self.suppressed,
            "alerts_by_severity": dict(self.alerts_by_severity),
            "alerts_by_detector": dict(self.alerts_by_detector),
            "incident_count": self.incident_count,
            "incidents_by_severity": dict(self.incidents_by_severity),
            "to_triage": self.to_triage,
            "top_incidents": [dict(i) for i in self.top_incidents],
            "events_scored": self.events_scored,
            "history_days": self.history_days,
            "model_note": self.model_note,
            "warming_up": [dict(w) for w in self.warming_up],
            "report_html": self.report_html,
            "exports": [dict(e) for e in self.exports],
            "seconds": self.seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        """The day in a flow's result (the record, and whether it was skipped)."""
        if self.empty:
            return {"date": self.date.isoformat(), "skipped": False, "empty": True, "alerts": 0}
        return {**self.record(), "skipped": self.skipped}


# --- completion records -------------------------------------------------------------------------


def record_key(day: dt.date) -> str:
    """``_state/days/D.json``: written when every stage of ``day`` has finished."""
    return f"_state/days/{day.isoformat()}.json"


def record_path(lake: LocalLake, day: dt.date) -> Path:
    """:func:`record_key` under ``lake.root`` (a lake folder's file)."""
    return lake.root / record_key(day)


def inputs_fingerprint(
    lake: LocalLake,
    day: dt.date,
    config: Config,
    sinks: Iterable[object],
    inventory_regions: Iterable[str],
) -> str:
    """Everything a day's results depend on: the window's event files, settings, sinks (by
    their text, ``kind[=target]``) and inventory regions."""
    from analytics.detect.features import events_fingerprint
    from analytics.detect.scoring import window_dates

    files = [path for d in window_dates(day, config) for path in lake.event_files(d)]
    digest = hashlib.sha256()
    digest.update(events_fingerprint(files).encode())
    digest.update(repr(config).encode())
    digest.update(repr(sorted(str(x) for x in sinks)).encode())
    digest.update(repr(sorted(inventory_regions)).encode())
    return digest.hexdigest()


def read_record(lake: LocalLake, day: dt.date) -> DayOutcome | None:
    """The day's completion record; None when there is none or it cannot be read (the day then
    runs again, which rewrites it)."""
    try:
        data = json.loads(lake.store.read_bytes(record_key(day)))
        return DayOutcome.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def completed(lake: LocalLake, day: dt.date, fingerprint: str) -> DayOutcome | None:
    """The day's record, marked skipped, when it completed with these inputs; else None."""
    record = read_record(lake, day)
    if record is None or record.fingerprint != fingerprint:
        return None
    return dataclasses.replace(record, skipped=True)


def is_complete(lake: LocalLake, day: dt.date, fingerprint: str) -> bool:
    return completed(lake, day, fingerprint) is not None


def write_record(lake: LocalLake, outcome: DayOutcome) -> None:
    """Record the day as complete (atomically: a killed run leaves the old record or none)."""
    data = json.dumps(outcome.record(), indent=2, default=str) + "\n"
    lake.store.write_bytes(record_key(outcome.date), data.encode())
