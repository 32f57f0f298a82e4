"""OCSF Detection Findings: required fields, anomaly analyses, the file sink and its ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from analytics.adapters.lake import LocalLake, write_parquet_atomic
from analytics.detect.scoring import alerts_path, read_alerts
from analytics.lake import schema as s
from analytics.publish.export import OcsfFileSink, default_ocsf_path, export, ocsf, prepare
from analytics.publish.export.idempotency import Ledger
from tests.publish import fixture as f
from tests.publish import ocsf_schema
from tests.publish.helpers import alert_keys, assert_golden, copy_lake, detections

VERSION = "0.0.0-test"
ACTIVE_IDS = sorted(
    row[s.ALERT_ID] for row in f.alerts().iter_rows(named=True) if row[s.SUPPRESSED_BY] is None
)


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    return copy_lake(fixture_lake, tmp_path / "lake")


def _all_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _lines(path: Path) -> list[dict[str, Any]]:
    """The Detection Findings of an OCSF file (the day's incidents follow them)."""
    return detections(_all_lines(path))


def test_default_file_sits_beside_the_days_alerts(lake: LocalLake) -> None:
    result = export(lake, f.DAY, OcsfFileSink(default_ocsf_path(lake, f.DAY)), version=VERSION)
    path = lake.root / "ocsf" / "event_date=2026-11-09" / "alerts.ocsf.jsonl"
    assert path.exists() and result.destination == str(path)
    assert (result.sent, result.suppressed, result.alerts) == (5, 1, 6)


def test_every_line_is_valid_ocsf_1_5_0(lake: LocalLake) -> None:
    export(lake, f.DAY, OcsfFileSink(default_ocsf_path(lake, f.DAY)), version=VERSION)
    lines = _all_lines(default_ocsf_path(lake, f.DAY))
    assert ocsf_schema.assert_valid(lines) == 6
    assert [line["class_uid"] for line in lines] == [2004] * 5 + [2005]
    assert (
        sorted(line["finding_info"]["uid"] for line in _lines(default_ocsf_path(lake, f.DAY)))
        == ACTIVE_IDS
    )
    for line in lines:
        assert line["metadata"]["version"] == ocsf.OCSF_VERSION == ocsf_schema.VERSION
        assert ocsf_schema.type_ids_missing(line) == []


def test_suppressed_alerts_are_not_exported(lake: LocalLake) -> None:
    export(lake, f.DAY, OcsfFileSink(default_ocsf_path(lake, f.DAY)), version=VERSION)
    uids = {line["finding_info"]["uid"] for line in _lines(default_ocsf_path(lake, f.DAY))}
    assert "4e5f60718293a4b5c6d7e8f90a1b2c3d" not in uids


def test_baseline_driven_alerts_carry_anomaly_analyses() -> None:
    items = {item.alert[s.DETECTOR]: item.finding for item in prepare(f.alerts(), version=VERSION)}
    model = items["KMS.UnusualKeyUsage"]["anomaly_analyses"][0]
    assert model["analysis_targets"] == [
        {"name": f.K_PAY, "type": "KMS Key"}, {"name": f.PAYMENTS, "type": "Principal"},
    ]  # fmt: skip
    anomaly = model["anomalies"][0]
    assert (anomaly["observation_parameter"], anomaly["observed_pattern"]) == (
        "volume_vs_usual",
        "SURGE",
    )
    assert anomaly["observations"][0]["value"].startswith("Decrypt 40 calls")
    assert "median 3" in model["baselines"][0]["observations"][0]["value"]
    assert "anomaly_analyses" in items["KMS.RootKmsUsage"]  # a rule with a stated baseline
    assert "anomaly_analyses" not in items["KMS.RotationDisabled"]  # no baseline: a plain finding


def test_evidence_events_become_ocsf_evidences(lake: LocalLake) -> None:
    export(lake, f.DAY, OcsfFileSink(default_ocsf_path(lake, f.DAY)), version=VERSION)
    root = next(line for line in _lines(default_ocsf_path(lake, f.DAY))
                if line["finding_info"]["analytic"]["uid"] == "KMS.RootKmsUsage")  # fmt: skip
    evidence = root["evidences"][0]
    assert evidence["http_request"]["user_agent"] == f.SCRIPT_AGENT
    assert evidence["api"]["operation"] == "Decrypt"
    assert evidence["src_endpoint"]["ip"] == "203.0.113.50"
    assert root["finding_info"]["related_events"] == [
        {"uid": f.event_id("d-root"), "type": "AWS CloudTrail event"}
    ]


def test_ocsf_file_matches_golden(lake: LocalLake) -> None:
    export(lake, f.DAY, OcsfFileSink(default_ocsf_path(lake, f.DAY)), version=VERSION)
    assert_golden("alerts.ocsf.jsonl", default_ocsf_path(lake, f.DAY).read_bytes())


def test_rerun_writes_nothing_twice(lake: LocalLake) -> None:
    sink = OcsfFileSink(default_ocsf_path(lake, f.DAY))
    export(lake, f.DAY, sink, version=VERSION)
    before = sink.path.read_bytes()
    again = export(lake, f.DAY, sink, version=VERSION)
    assert (again.sent, again.already_sent, again.batches) == (0, 5, 0)
    assert sink.path.read_bytes() == before


def test_a_new_alert_is_appended_once(lake: LocalLake) -> None:
    sink = OcsfFileSink(default_ocsf_path(lake, f.DAY))
    export(lake, f.DAY, sink, version=VERSION)
    alerts = read_alerts(lake, f.DAY)
    extra = alerts.head(1).with_columns(
        pl.lit("ffffffffffffffffffffffffffffffff").alias(s.ALERT_ID)
    )
    write_parquet_atomic(pl.concat([alerts, extra]).to_arrow().cast(s.ALERT_SCHEMA),
                         alerts_path(lake, f.DAY))  # fmt: skip
    result = export(lake, f.DAY, sink, version=VERSION)
    assert result.sent == 1
    uids = [line["finding_info"]["uid"] for line in _lines(sink.path)]
    assert len(uids) == 6 == len(set(uids))
    incidents = [line for line in _all_lines(sink.path) if line["class_uid"] == 2005]
    assert len(incidents) == 1  # its alerts did not change: not sent again


def test_ledger_is_written_after_delivery_and_names_the_destination(lake: LocalLake) -> None:
    sink = OcsfFileSink(default_ocsf_path(lake, f.DAY))
    moment = dt.datetime(2026, 11, 10, 7, tzinfo=dt.UTC)
    export(lake, f.DAY, sink, version=VERSION, clock=lambda: moment)
    ledger = Ledger(lake, "ocsf-file")
    assert ledger.path == lake.root / "_state" / "exports" / "ocsf-file.parquet"
    assert sorted(alert_keys(ledger.sent(sink.destination))) == ACTIVE_IDS
    assert ledger.sent("/somewhere/else.jsonl") == set()
    assert ledger.read().column("exported_at").to_pylist() == [moment] * 6  # and the incident


def test_the_schema_check_catches_what_is_wrong() -> None:
    finding = prepare(f.alerts(), version=VERSION)[0].finding
    broken = {**finding, "finding_info": {"title": "x"}, "bogus": 1}
    del broken["time"]
    problems = " ".join(ocsf_schema.errors(broken))
    assert "'time' is a required property" in problems
    assert "'uid' is a required property" in problems and "'bogus' was unexpected" in problems
    assert ocsf_schema.errors({**finding, "class_uid": 2001}) == [
        "class_uid 2001 is not one keytrail exports"
    ]


def test_severity_maps_to_ocsf_ids() -> None:
    assert [ocsf.severity_id(name) for name in s.SEVERITIES] == [1, 2, 3, 4, 5]
    assert ocsf.severity_id("bogus") == 0
