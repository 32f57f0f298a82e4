"""``keytrail detect`` and ``keytrail evaluate`` as an analyst reads them: incidents first."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import Any

import polars as pl
import pytest

from analytics import schema as s
from analytics.adapters.lake import LocalLake
from analytics.detect import read_alerts
from analytics.incidents import short_arn
from tests.ingest.helpers import run_cli

DAY = dt.date(2026, 11, 13)
"""The sample trail's day with several incidents (an actor's deletion spree, root use, …)."""


@pytest.fixture(scope="module")
def detected(sample_lake: LocalLake, tmp_path_factory: pytest.TempPathFactory) -> tuple[
    LocalLake, dict[str, Any]]:  # fmt: skip
    target = tmp_path_factory.mktemp("incident-cli") / "lake"
    shutil.copytree(sample_lake.root, target)
    result = run_cli("detect", "--lake", str(target), "--date", str(DAY), "--json")
    return LocalLake(target), json.loads(result.stdout)


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
        assert short_arn(incident["actors"][0]) in detail
        assert short_arn(incident["key_arns"][0]) in detail
        marked = [line for line in lines[legend + 1 :] if line.startswith(f"I{number} ")]
        assert len(marked) == min(incident["alert_count"], 30)
    alone = [line for line in lines[legend + 1 :] if line.startswith("- ")]
    assert len(alone) == summary["to_triage"] - summary["incident_count"]
