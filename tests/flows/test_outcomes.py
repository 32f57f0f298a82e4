"""What a run returns and records, as typed values: their JSON round trip, the completion record
on disk (its keys are a contract: ``keytrail status`` and older lakes read them) and when a day
counts as complete. No Prefect: these are the values the flows pass between stages."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import pytest

from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect import scoring as detect
from analytics.publish.reports.run_summary import alert_table, day_markdown, incident_table, md
from analytics.run import (
    DayOutcome,
    LakeCheckOutcome,
    PublishResult,
    completed,
    detection_lines,
    inputs_fingerprint,
    is_complete,
    read_record,
    record_path,
    run_title,
    warming_lines,
    write_record,
)

DAY = dt.date(2026, 11, 14)
RECORD_KEYS = [
    "date", "completed_at", "fingerprint", "alerts", "suppressed", "alerts_by_severity",
    "alerts_by_detector", "incident_count", "incidents_by_severity", "to_triage",
    "top_incidents", "events_scored", "history_days", "model_note", "warming_up", "report_html",
    "exports", "seconds",
]  # fmt: skip
WARMING = {"id": "KMS.Rare|*", "history_days": 3, "needed_days": 7,
           "backfill": "keytrail backfill --start 2026-11-01"}  # fmt: skip


def an_outcome(**changes: object) -> DayOutcome:
    outcome = DayOutcome(
        DAY, alerts=4, suppressed=1, alerts_by_severity={"high": 3, "low": 1},
        alerts_by_detector={"KMS.RootKmsUsage": 4}, incident_count=2,
        incidents_by_severity={"high": 2}, to_triage=3,
        top_incidents=({"incident_id": "i1", "severity": "high", "title": "t",
                        "alert_count": 2},),
        events_scored=1234, history_days=7, model_note="too little history",
        warming_up=(WARMING,), report_html="/lake/reports/2026-11-14/report.html",
        exports=({"sink": "ocsf-file", "destination": "/x", "sent": 4, "already_sent": 0},),
        seconds=1.5, completed_at="2026-11-15T02:31:00+00:00", fingerprint="f" * 64,
    )  # fmt: skip
    return dataclasses.replace(outcome, **changes)  # type: ignore[arg-type]


def test_a_day_outcome_survives_its_json_round_trip() -> None:
    outcome = an_outcome(alert_rows=({"alert_id": "a"},), incident_rows=({"incident_id": "i"},))
    data = json.loads(json.dumps(outcome.to_dict()))
    assert list(data) == [*RECORD_KEYS, "skipped"]
    assert DayOutcome.from_dict(data) == outcome
    assert DayOutcome.from_dict(data).alert_rows == ()  # the artifact rows stay in the run
    skipped = an_outcome(skipped=True)
    assert DayOutcome.from_dict(skipped.to_dict()) == skipped
    assert skipped.to_dict()["skipped"] is True and outcome.to_dict()["skipped"] is False


def test_a_day_without_events_keeps_its_short_form() -> None:
    empty = DayOutcome.nothing_to_score(DAY)
    expected = {"date": "2026-11-14", "skipped": False, "empty": True, "alerts": 0}
    assert empty.to_dict() == expected
    assert DayOutcome.from_dict(expected) == empty


def test_lake_check_and_publish_results_survive_their_round_trip(lake_copy: LocalLake) -> None:
    junk = lake_copy.root / "events" / "event_date=2026-11-10" / "junk.parquet"
    junk.write_bytes(b"not parquet")
    checked = LakeCheckOutcome.of(lake_copy)
    assert checked.clean is False and checked.finding_counts == {"unreadable_file": 1}
    assert checked.finding_lines()[0].startswith("unreadable_file: events/event_date=2026-11-10")
    data = json.loads(json.dumps(checked.to_dict()))
    assert set(data) == {"clean", "days", "event_files", "events", "state_objects",
                         "finding_counts", "findings", "quarantine", "seconds"}  # fmt: skip
    assert LakeCheckOutcome.from_dict(data) == checked
    failed = LakeCheckOutcome(clean=None, error="permission denied")
    assert failed.to_dict() == {"clean": None, "error": "permission denied"}
    assert LakeCheckOutcome.from_dict(failed.to_dict()) == failed
    published = PublishResult("/r/report.html", 3, {"alerts": 2}, ("note",), ({"id": "x"},))
    assert PublishResult.from_dict(json.loads(json.dumps(published.to_dict()))) == published


def test_a_scored_day_is_recorded_and_read_back(lake_copy: LocalLake) -> None:
    config = Config(baseline_window_days=7)
    detection = detect.run(lake_copy, DAY, config)
    outcome = DayOutcome.scored(detection, fingerprint="abc", history_days=7,
                                report_html="r.html", exports=[], seconds=2.0)  # fmt: skip
    assert outcome.alerts == detection.summary["alerts"]
    assert outcome.incident_count == detection.incidents.height
    assert len(outcome.incident_rows) == detection.incidents.height
    write_record(lake_copy, outcome)
    on_disk = json.loads(record_path(lake_copy, DAY).read_text())
    assert list(on_disk) == RECORD_KEYS
    assert on_disk["incident_count"] == outcome.incident_count
    assert read_record(lake_copy, DAY) == outcome
    assert completed(lake_copy, DAY, "abc") == dataclasses.replace(outcome, skipped=True)
    assert completed(lake_copy, DAY, "other") is None
    assert is_complete(lake_copy, DAY, "abc") and not is_complete(lake_copy, DAY, "other")


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '{"alerts": 3}'])
def test_an_unreadable_record_means_the_day_runs_again(lake_copy: LocalLake, text: str) -> None:
    assert read_record(lake_copy, DAY) is None
    path = record_path(lake_copy, DAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    assert read_record(lake_copy, DAY) is None
    assert not is_complete(lake_copy, DAY, "abc")


def test_the_fingerprint_follows_the_days_inputs_and_only_them(lake_copy: LocalLake) -> None:
    config = Config(baseline_window_days=7)

    def fingerprint(
        cfg: Config = config, sinks: tuple[str, ...] = ("ocsf-file", "s3=s3://b")
    ) -> str:
        return inputs_fingerprint(lake_copy, DAY, cfg, sinks, ["eu-west-1"])

    before = fingerprint()
    assert fingerprint(sinks=("s3=s3://b", "ocsf-file")) == before  # order does not matter
    assert fingerprint(sinks=("ocsf-file",)) != before
    assert fingerprint(cfg=Config(baseline_window_days=8)) != before
    assert inputs_fingerprint(lake_copy, DAY, config, ("ocsf-file", "s3=s3://b"), []) != before
    (outside,) = lake_copy.event_files(dt.date(2026, 11, 1))  # before the 7-day window
    os.utime(outside.path, ns=(outside.mtime_ns + 10**9, outside.mtime_ns + 10**9))
    assert fingerprint() == before
    (inside,) = lake_copy.event_files(DAY - dt.timedelta(days=2))
    os.utime(inside.path, ns=(inside.mtime_ns + 10**9, inside.mtime_ns + 10**9))
    assert fingerprint() != before


def test_summary_lines_escape_record_text_for_markdown() -> None:
    assert warming_lines([WARMING]) == [
        "warming up: KMS.Rare|* has 3 of 7 day(s) of history; backfill: "
        "keytrail backfill --start 2026-11-01"
    ]
    (line,) = warming_lines([WARMING], md)
    assert "KMS.Rare\\|\\*" in line
    assert f"- {line}" in day_markdown(an_outcome())
    assert run_title("nightly", "2026-11-14", "s3://t", "/lake") == (
        "keytrail nightly 2026-11-14 — s3://t → /lake"
    )
    days = [an_outcome(), DayOutcome.nothing_to_score(DAY + dt.timedelta(days=1))]
    assert incident_table(days) == [{"date": "2026-11-14", "incidents": 0},
                                    {"date": "2026-11-15", "incidents": 0}]  # fmt: skip
    rows = an_outcome(alert_rows=({"alert_id": "a"},))
    assert alert_table([rows, days[1]]) == [{"alert_id": "a"}]


def test_a_days_detection_reads_as_log_lines() -> None:
    summary = {"date": "2026-11-14", "alerts": 3, "suppressed": 1, "events_scored": 900,
               "alerts_by_severity": {"critical": 0, "high": 2, "low": 1},
               "model_note": "too little history", "warming_up": [WARMING]}  # fmt: skip
    assert detection_lines(summary) == [
        "detect 2026-11-14: 3 alert(s), 1 suppressed, 900 events scored; by severity: 2 high, "
        "1 low",
        "model: too little history",
        *warming_lines([WARMING]),
    ]
    quiet = {**summary, "alerts_by_severity": {"high": 0}, "model_note": None, "warming_up": []}
    assert (
        detection_lines(quiet)[0].endswith("by severity: none") and len(detection_lines(quiet)) == 1
    )
