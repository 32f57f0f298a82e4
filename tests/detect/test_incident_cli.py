"""``keytrail detect`` and ``keytrail evaluate`` as an analyst reads them: incidents first."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics import api
from analytics.adapters.lake import LocalLake
from analytics.detect.incidents import short_arn
from analytics.detect.scoring import read_alerts, run
from analytics.lake import schema as s
from tests.ingest.helpers import run_cli

DAY = dt.date(2026, 11, 13)
"""The sample trail's day with several incidents (an actor's deletion spree, root use, …)."""


LABELS = Path(__file__).resolve().parents[2] / "data" / "samples" / "trail" / "labels.json"


# The tests of this module share its module fixture (the sample lake scored over three days): one
# xdist_group keeps them on one worker, which builds it once (--dist loadgroup schedules ungrouped
# tests one by one, on either worker).
pytestmark = pytest.mark.xdist_group("incident-cli")


@pytest.fixture(scope="module")
def detected(sample_lake: LocalLake, tmp_path_factory: pytest.TempPathFactory) -> tuple[
    LocalLake, dict[str, Any]]:  # fmt: skip
    """The sample lake scored over its last three days, the middle one through the CLI."""
    target = tmp_path_factory.mktemp("incident-cli") / "lake"
    shutil.copytree(sample_lake.root, target)
    lake = LocalLake(target)
    run(lake, DAY - dt.timedelta(days=1))
    result = run_cli("detect", "--lake", str(target), "--date", str(DAY), "--json")
    run(lake, DAY + dt.timedelta(days=1))
    return lake, json.loads(result.stdout)


def test_detect_json_lists_each_incident_with_its_alerts(
    detected: tuple[LocalLake, dict[str, Any]],
) -> None:
    lake, summary = detected
    incidents = summary["incidents"]
    assert summary["incident_count"] == len(incidents) >= 2
    assert sum(summary["incidents_by_severity"].values()) == len(incidents)
    alerts = read_alerts(lake, DAY)
    for incident in incidents:
        for field in ("incident_id", "severity", "title", "summary", "first_seen", "last_seen",
                      "actors", "key_arns", "account_ids", "mitre_tactics", "mitre_techniques",
                      "alert_ids", "alert_count", "severity_raised_because", "timeline"):  # fmt: skip
            assert field in incident, field
        members = alerts.filter(pl.col(s.INCIDENT_ID) == incident["incident_id"])
        assert sorted(members.get_column(s.ALERT_ID).to_list()) == sorted(incident["alert_ids"])
        assert incident["alert_count"] == len(incident["alert_ids"]) == len(incident["timeline"])
        assert dt.datetime.fromisoformat(incident["first_seen"]) <= dt.datetime.fromisoformat(
            incident["last_seen"]
        )
        times = [entry["time"] for entry in incident["timeline"]]
        assert times == sorted(times)
    alone = alerts.filter(pl.col(s.INCIDENT_ID).is_null() & pl.col(s.SUPPRESSED_BY).is_null())
    assert summary["to_triage"] == len(incidents) + alone.height


def test_detect_prints_incidents_before_the_alerts_and_marks_which_alerts_they_hold(
    detected: tuple[LocalLake, dict[str, Any]],
) -> None:
    lake, summary = detected
    result = run_cli("detect", "--lake", str(lake.root), "--date", str(DAY), "--dry-run")
    lines = result.stdout.splitlines()
    assert f"would raise {summary['alerts']} alert(s) in {summary['incident_count']} incident(s)" \
        in " ".join(lines[:2])  # fmt: skip
    legend = next(i for i, line in enumerate(lines) if line.startswith("alerts (I1"))
    for number, incident in enumerate(summary["incidents"], start=1):
        heading = next(i for i, line in enumerate(lines) if line.startswith(f"I{number} "))
        assert heading < legend
        assert incident["severity"].upper() in lines[heading]
        detail = " ".join(lines[heading + 1 : heading + 3])
        assert f"{incident['alert_count']} alerts" in detail
        # an actor's sweep across keys is one alert without a key: its incident may name none
        for names in (incident["actors"], incident["key_arns"]):
            assert not names or short_arn(names[0]) in detail
        marked = [line for line in lines[legend + 1 :] if line.startswith(f"I{number} ")]
        assert len(marked) == min(incident["alert_count"], 30)
    alone = [line for line in lines[legend + 1 :] if line.startswith("- ")]
    assert len(alone) == summary["to_triage"] - summary["incident_count"]


def test_evaluate_counts_what_each_scenario_took_to_triage(
    detected: tuple[LocalLake, dict[str, Any]],
) -> None:
    lake, _ = detected
    result = run_cli("evaluate", "--lake", str(lake.root), "--labels", str(LABELS), "--json")
    report = json.loads(result.stdout)
    incidents = api.incidents(api.Lake(lake))
    held = {a: row["incident_id"] for row in incidents.iter_rows(named=True)
            for a in row["alert_ids"]}  # fmt: skip
    alerts = api.alerts(api.Lake(lake))
    by_id = {row["id"]: row for row in report["scenarios"]}
    ransomware = by_id["S06-ransomware_imported_key"]
    mine = alerts.filter(
        pl.col("actor").str.ends_with("role/ops/legacy-automation") & (pl.col("event_date") == DAY)
    ).get_column("alert_id")
    assert ransomware["alerts"] == mine.len() > 1
    expected = {held[a] for a in mine if a in held}
    assert ransomware["incidents"] == len(expected) >= 1
    assert ransomware["to_triage"] == len(expected) + sum(a not in held for a in mine)
    assert ransomware["to_triage"] < ransomware["alerts"]
    for row in report["scenarios"]:
        assert row["to_triage"] <= row["alerts"]
        assert (row["to_triage"] > 0) == row["found"]
    assert report["scored_days"] == [str(DAY - dt.timedelta(days=1)), str(DAY),
                                     str(DAY + dt.timedelta(days=1))]  # fmt: skip
    assert report["incidents"] == incidents.height
    strays = report["high_incidents_outside_attacks"] + report["high_alerts_outside_attacks"]
    assert report["high_outside_attacks"] == len(strays)
    assert isinstance(report["decoys_in_high_incidents"], list)
    text = run_cli("evaluate", "--lake", str(lake.root), "--labels", str(LABELS)).stdout
    assert "to triage" in text
    assert f"over 3 scored day(s): {incidents.height} incident(s)" in " ".join(text.split())
