"""Grouping alerts into incidents (analytics.detect.incidents), on small hand-made alert frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from analytics.adapters.lake import LocalLake
from analytics.detect import incidents
from analytics.detect.scoring import alerts_path, read_alerts, read_alerts_between
from analytics.lake import schema as s
from tests.detect.alert_frames import DAY, alert, at, frame, key, role

EMPTY = frame([])
NEXT_DAY = DAY + dt.timedelta(days=1)


def test_one_actors_alerts_across_keys_and_detectors_are_one_incident() -> None:
    actor = role("ops/legacy-automation")
    alerts = frame([
        alert("a1", "KMS.KeyDisabledOrScheduledForDeletion", at(20), actor=actor,
              key_arn=key("k1"), severity="high", mitre=["T1485"]),
        alert("a2", "KMS.UnusualKeyUsage", at(21), actor=actor, key_arn=key("k2"),
              mitre=["T1530"]),
        alert("a3", "KMS.ImportedKeyMaterialChanged", at(22), actor=actor, key_arn=key("k3")),
    ])  # fmt: skip
    grouping = incidents.group(alerts, EMPTY, DAY)
    assert grouping.incidents.height == 1
    incident = grouping.incidents.row(0, named=True)
    assert incident[s.ALERT_IDS] == ["a1", "a2", "a3"]
    assert incident[s.ACTORS] == [actor]
    assert incident[s.KEY_ARNS] == [key("k1"), key("k2"), key("k3")]
    assert incident[s.SEVERITY] == "high"
    assert incident[s.TACTICS] == ["Collection", "Impact"]
    assert [entry["alert_id"] for entry in incident[s.TIMELINE]] == ["a1", "a2", "a3"]
    assert set(grouping.incident_of) == {"a1", "a2", "a3"}


def test_two_actors_far_apart_stay_two_incidents() -> None:
    first, second = role("app/one"), role("app/two")
    alerts = frame([
        alert("a1", "KMS.UnusualKeyUsage", at(1), actor=first, key_arn=key("k1")),
        alert("a2", "KMS.RootKmsUsage", at(2), actor=first, key_arn=key("k1")),
        alert("b1", "KMS.UnusualKeyUsage", at(20), actor=second, key_arn=key("k2")),
        alert("b2", "KMS.UnusualKeyUsage", at(21), actor=second, key_arn=key("k3")),
    ])  # fmt: skip
    grouping = incidents.group(alerts, EMPTY, DAY)
    assert sorted(grouping.incidents.get_column(s.ALERT_IDS).to_list()) == [
        ["a1", "a2"], ["b1", "b2"]
    ]  # fmt: skip
    assert grouping.incident_of["a1"] != grouping.incident_of["b1"]


def test_the_same_actor_a_day_apart_is_two_stories() -> None:
    actor = role("app/one")
    alerts = frame([
        alert("a1", "KMS.UnusualKeyUsage", at(0), actor=actor, key_arn=key("k1")),
        alert("a2", "KMS.UnusualKeyUsage", at(1), actor=actor, key_arn=key("k1")),
    ])  # fmt: skip
    narrow = incidents.IncidentSettings(window_hours=1)
    apart = frame([alert("a3", "KMS.UnusualKeyUsage", at(23), actor=actor, key_arn=key("k2"))])
    grouping = incidents.group(pl.concat([alerts, apart]), EMPTY, DAY, narrow)
    assert grouping.incidents.get_column(s.ALERT_IDS).to_list() == [["a1", "a2"]]
    assert "a3" not in grouping.incident_of


def test_a_key_scheduled_for_deletion_and_its_later_failures_by_others_are_one_incident() -> None:
    doomed = key("doomed")
    alerts = frame([
        alert("del", "KMS.KeyDisabledOrScheduledForDeletion", at(13), actor=role("admin"),
              key_arn=doomed, severity="high"),
        alert("use", "KMS.PendingDeletionKeyUsed", at(15), actor=role("app/search"),
              key_arn=doomed, severity="high"),
        alert("fail", "KMS.FailedDecryptBurst", at(18), actor=role("app/billing"),
              key_arn=doomed, severity="high", pattern="FAILURES"),
        alert("other", "KMS.FailedDecryptBurst", at(18), actor=role("app/other"),
              key_arn=key("unrelated"), severity="high", pattern="FAILURES"),
    ])  # fmt: skip
    grouping = incidents.group(alerts, EMPTY, DAY)
    assert grouping.incidents.height == 1
    incident = grouping.incidents.row(0, named=True)
    assert incident[s.ALERT_IDS] == ["del", "use", "fail"]
    assert len(incident[s.ACTORS]) == 3
    assert any("made unusable" in link for link in incident[s.LINKS])
    assert "other" not in grouping.incident_of


def test_an_incident_going_on_past_midnight_keeps_its_id() -> None:
    actor = role("ops/intruder")
    day_one = frame([
        alert("a1", "KMS.UnusualKeyUsage", at(21), actor=actor, key_arn=key("k1")),
        alert("a2", "KMS.UnusualKeyUsage", at(23), actor=actor, key_arn=key("k2")),
    ])  # fmt: skip
    first = incidents.group(day_one, EMPTY, DAY)
    written = incidents.label_alerts(day_one, first)
    day_two = frame([
        alert("a3", "KMS.KeyPolicyChanged", at(2, NEXT_DAY), actor=actor, key_arn=key("k3")),
    ])  # fmt: skip
    second = incidents.group(day_two, written, NEXT_DAY)
    (incident_id,) = first.incidents.get_column(s.INCIDENT_ID).to_list()
    assert second.incidents.get_column(s.INCIDENT_ID).to_list() == [incident_id]
    assert second.incident_of == {"a3": incident_id}
    continued = second.incidents.row(0, named=True)
    assert continued[s.ALERT_IDS] == ["a1", "a2", "a3"]
    assert continued[s.EVENT_DATE] == NEXT_DAY
    assert continued[s.FIRST_SEEN] == at(21)


def test_the_same_alerts_give_the_same_incidents_in_any_order() -> None:
    rows = [
        alert("a1", "KMS.UnusualKeyUsage", at(3), actor=role("x"), key_arn=key("k1")),
        alert("a2", "KMS.RootKmsUsage", at(4), actor=role("x"), key_arn=key("k2")),
        alert("b1", "KMS.KeyPolicyChanged", at(9), actor=role("admin"), key_arn=key("k3")),
        alert("b2", "KMS.NewCrossAccountCaller", at(11), actor=role("x", "999988887777"),
              key_arn=key("k3")),
    ]  # fmt: skip
    once = incidents.group(frame(rows), EMPTY, DAY)
    again = incidents.group(frame(list(reversed(rows))), EMPTY, DAY)
    assert once.incidents.equals(again.incidents)
    assert once.incident_of == again.incident_of
    assert once.incidents.height == 2


def test_suppressed_alerts_are_part_of_no_incident() -> None:
    actor = role("app/batch")
    alerts = frame([
        alert("a1", "KMS.UnusualKeyUsage", at(3), actor=actor, key_arn=key("k1")),
        alert("a2", "KMS.UnusualKeyUsage", at(4), actor=actor, key_arn=key("k2"),
              suppressed_by="batch-window"),
    ])  # fmt: skip
    grouping = incidents.group(alerts, EMPTY, DAY)
    assert grouping.incidents.is_empty()
    assert grouping.incident_of == {}


def test_a_single_alert_stands_alone_and_is_triaged_by_itself() -> None:
    alerts = frame([alert("a1", "KMS.RootKmsUsage", at(9), actor="root:111122223333")])
    grouping = incidents.group(alerts, EMPTY, DAY)
    labelled = incidents.label_alerts(alerts, grouping)
    assert grouping.incidents.is_empty()
    assert labelled.get_column(s.INCIDENT_ID).to_list() == [None]
    assert incidents.triage_count(grouping.incidents, labelled) == 1


def test_a_key_opened_to_outsiders_then_used_by_a_new_outside_caller_is_more_severe() -> None:
    opened = key("shared")
    alerts = frame([
        alert("pol", "KMS.KeyPolicyChanged", at(10), actor=role("admin"), key_arn=opened,
              severity="high"),
        alert("new", "KMS.NewCrossAccountCaller", at(12), actor=role("x", "999988887777"),
              key_arn=opened, severity="high"),
    ])  # fmt: skip
    grouping = incidents.group(alerts, EMPTY, DAY)
    incident = grouping.incidents.row(0, named=True)
    assert incident[s.SEVERITY] == "critical"
    assert "opened to outsiders" in (incident[s.SEVERITY_RAISED_BECAUSE] or "")
    assert "Severity raised" in incident[s.SUMMARY]


def test_alert_files_written_before_incidents_existed_are_still_read(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    old = frame([alert("a1", "KMS.RootKmsUsage", at(9), actor="root:111122223333")])
    table = old.drop(s.INCIDENT_ID).to_arrow()
    path = Path(alerts_path(lake, DAY))
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    assert s.INCIDENT_ID not in pq.read_schema(path).names
    read = read_alerts(lake, DAY)
    assert read.get_column(s.INCIDENT_ID).to_list() == [None]
    assert read.columns == list(s.ALERT_COLUMNS)
    between = read_alerts_between(lake, DAY - dt.timedelta(days=2), DAY)
    continued = incidents.group(
        frame([alert("a2", "KMS.UnusualKeyUsage", at(1, NEXT_DAY), actor="root:111122223333")]),
        between,
        NEXT_DAY,
    )
    assert continued.incidents.get_column(s.ALERT_IDS).to_list() == [["a1", "a2"]]
