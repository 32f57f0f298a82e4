"""Detection end to end on the sample lake: stable alerts, cold start, dry run, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from analytics.adapters.lake import LocalLake
from analytics.detect.features import features_path
from analytics.detect.scoring import alerts_path, read_alerts, run
from analytics.lake import schema as s
from tests.ingest.helpers import run_cli

LAST_DAY = dt.date(2026, 11, 14)
LABELS = json.loads(
    (Path(__file__).resolve().parents[2] / "data/samples/trail/labels.json").read_text()
)


def test_alerts_match_the_alert_schema_and_explain_themselves(lake_copy: LocalLake) -> None:
    result = run(lake_copy, LAST_DAY)
    table = pl.read_parquet(alerts_path(lake_copy, LAST_DAY)).to_arrow()
    # event_date is the folder's name, not a column of the file
    assert table.schema.names == [c for c in s.ALERT_COLUMNS if c != s.EVENT_DATE]
    assert result.alerts.height > 0
    for alert in result.alerts.iter_rows(named=True):
        assert alert[s.REASON] and alert[s.TITLE]
        assert alert[s.SEVERITY] in s.SEVERITIES
        assert alert[s.EVIDENCE_COUNT] >= len(alert[s.EVIDENCE_EVENT_IDS]) > 0
        assert len(alert[s.EVIDENCE_EVENT_IDS]) <= s.MAX_EVIDENCE_IDS
        assert alert[s.WINDOW_START] <= alert[s.WINDOW_END]


def test_rerun_gives_the_same_alert_ids_and_no_duplicates(lake_copy: LocalLake) -> None:
    first = run(lake_copy, LAST_DAY).alerts
    second = run(lake_copy, LAST_DAY).alerts
    ids = second.get_column(s.ALERT_ID)
    assert ids.n_unique() == ids.len()
    assert sorted(first.get_column(s.ALERT_ID)) == sorted(ids)
    assert read_alerts(lake_copy, LAST_DAY).height == second.height


def test_evidence_points_at_real_events(lake_copy: LocalLake) -> None:
    alerts = run(lake_copy, LAST_DAY).alerts
    events = pl.read_parquet(lake_copy.partition_files(LAST_DAY), columns=[s.EVENT_ID])
    evidence = set(alerts.get_column(s.EVIDENCE_EVENT_IDS).explode().drop_nulls())
    assert evidence <= set(events.get_column(s.EVENT_ID))


def test_features_are_recomputed_only_when_the_days_events_change(lake_copy: LocalLake) -> None:
    run(lake_copy, LAST_DAY)
    again = run(lake_copy, LAST_DAY)
    assert again.summary["feature_days_recomputed"] == 0
    day = LAST_DAY - dt.timedelta(days=3)
    before = features_path(lake_copy, day).stat().st_mtime_ns
    extra = lake_copy.partition_files(day)[0]
    extra.rename(extra.with_name("part-moved.parquet"))  # the day's files changed
    changed = run(lake_copy, LAST_DAY)
    assert changed.summary["feature_days_recomputed"] == 1
    assert features_path(lake_copy, day).stat().st_mtime_ns != before


def test_model_is_silent_and_says_why_with_too_little_history(lake_copy: LocalLake) -> None:
    result = run(lake_copy, dt.date(2026, 11, 5), dry_run=True)
    assert "needs 7" in result.summary["model_note"]
    assert not result.alerts.filter(pl.col(s.DETECTOR) == "KMS.UnusualKeyUsage").height


def test_dry_run_reports_without_writing(lake_copy: LocalLake) -> None:
    result = run(lake_copy, LAST_DAY, dry_run=True)
    assert result.summary["alerts"] > 0
    assert not alerts_path(lake_copy, LAST_DAY).exists()


def test_labelled_scenarios_of_the_last_day_are_found(lake_copy: LocalLake) -> None:
    alerts = run(lake_copy, LAST_DAY).alerts
    on_last_day = [
        x
        for x in LABELS["scenarios"]
        if x["malicious"] and x["window_start"].startswith("2026-11-14")
    ]
    assert on_last_day
    for scenario in on_last_day:
        keys, actors = set(scenario["key_arns"]), set(scenario["actors"])
        hits = alerts.filter(pl.col(s.KEY_ARN).is_in(keys) | pl.col(s.ACTOR).is_in(actors))
        assert hits.height, scenario["id"]


def test_detect_cli_json_summary(lake_copy: LocalLake) -> None:
    result = run_cli("detect", "--lake", str(lake_copy.root), "--date", str(LAST_DAY), "--json")
    summary = json.loads(result.stdout)
    for field in (
        "alerts_by_detector",
        "alerts_by_severity",
        "suppressed",
        "rows_scored",
        "seconds",
    ):
        assert field in summary
    assert sum(summary["alerts_by_severity"].values()) == summary["alerts"]


def test_detect_cli_refuses_a_day_without_events(lake_copy: LocalLake) -> None:
    result = run_cli("detect", "--lake", str(lake_copy.root), "--date", "2020-01-01", check=False)
    assert result.returncode == 2
    assert "no events for 2020-01-01" in result.stderr
