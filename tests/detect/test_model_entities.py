"""The isolation forest's entities: one alert per actor sweep, no verdicts on actors without
history, and month-end jobs judged against last month's run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.config import Config
from analytics.detect import baselines as bl
from analytics.detect import features
from analytics.detect import incidents as grouping
from analytics.detect.model import DETECTOR_ID, matrix
from analytics.detect.scoring import run
from analytics.generator import generate_tree
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from analytics.publish.export import asff, ocsf
from tests.ingest.helpers import lake_events

LABELS = json.loads(
    (Path(__file__).resolve().parents[2] / "data/samples/trail/labels.json").read_text()
)
SCENARIOS = {x["id"]: x for x in LABELS["scenarios"]}
SWEEP = SCENARIOS["S02-failed_decrypt_enumeration"]
SWEEP_DAY = dt.date(2026, 11, 12)
MODEL = pl.col(s.DETECTOR) == DETECTOR_ID
HIGH = pl.col(s.SEVERITY).is_in(["high", "critical"])


def _model_alerts(lake: LocalLake, day: dt.date, actor: str) -> pl.DataFrame:
    alerts = run(lake, day, dry_run=True).alerts
    return alerts.filter(MODEL & (pl.col(s.ACTOR) == actor))


def test_a_sweep_across_keys_is_one_model_alert_naming_the_keys(lake_copy: LocalLake) -> None:
    actor = SWEEP["actors"][0]
    alerts = _model_alerts(lake_copy, SWEEP_DAY, actor)
    assert alerts.height == 1, alerts.select(s.KEY_ARN, s.REASON)
    sweep = alerts.row(0, named=True)
    assert sweep[s.KEY_ARN] is None  # the entity is the actor, not one of its keys
    assert "keys by one actor" in sweep[s.REASON]
    evidence = lake_events(lake_copy.root).filter(
        pl.col(s.EVENT_ID).is_in(sweep[s.EVIDENCE_EVENT_IDS])
    )
    assert evidence.height == len(sweep[s.EVIDENCE_EVENT_IDS]) > 0
    assert evidence.get_column(s.ACTOR).unique().to_list() == [actor]
    keys = evidence.get_column(s.KEY_ARN).unique().to_list()
    assert len(keys) > 1  # every key of the sweep is represented, not just the first
    assert f"Unusual use of {len(keys)} keys" in sweep[s.REASON]
    named = [key for key in keys if key.rsplit("/", 1)[1][:8] in sweep[s.REASON]]
    assert len(named) == min(3, len(keys))
    if len(keys) > 3:
        assert f"and {len(keys) - 3} more" in sweep[s.REASON]
    assert sweep[s.EVIDENCE_COUNT] >= len(sweep[s.EVIDENCE_EVENT_IDS])
    assert set(keys) <= set(sweep[s.RELATED_KEY_ARNS])  # the keys, for incidents and SIEMs


def test_a_sweeps_incident_and_findings_name_its_keys(lake_copy: LocalLake) -> None:
    actor = SWEEP["actors"][0]
    result = run(lake_copy, SWEEP_DAY, dry_run=True)
    sweep = result.alerts.filter(MODEL & (pl.col(s.ACTOR) == actor)).row(0, named=True)
    keys = sweep[s.RELATED_KEY_ARNS]
    assert len(keys) > 1
    incident = result.incidents.filter(pl.col(s.ALERT_IDS).list.contains(sweep[s.ALERT_ID]))
    if incident.height:  # grouped with other alerts of the actor: the incident lists the keys
        assert set(keys) <= set(incident.item(0, s.KEY_ARNS))
    # Grouped with another alert of the same actor, the incident names every key of the sweep.
    other = {**sweep, s.ALERT_ID: "f" * 32, s.KEY_ARN: keys[0], s.RELATED_KEY_ARNS: None}
    pair = pl.DataFrame([sweep, other], schema=result.alerts.schema)
    grouped = grouping.group(pair, result.alerts.clear(), SWEEP_DAY).incidents
    assert set(grouped.item(0, s.KEY_ARNS)) == set(keys)
    finding = ocsf.finding(sweep, product_version="test")
    assert [r["uid"] for r in finding["resources"]] == keys
    assert {o["value"] for o in finding["observables"] if o["name"] == "resources.uid"} == set(keys)
    imported = asff.finding(sweep, account_id="111122223333", region="us-east-1")
    assert [r["Id"] for r in imported["Resources"]] == keys
    assert {r["Type"] for r in imported["Resources"]} == {"AwsKmsKey"}


def test_a_sweep_keeps_its_alert_id_across_reruns(lake_copy: LocalLake) -> None:
    actor = SWEEP["actors"][0]
    ids = []
    for _ in range(2):
        alerts = run(lake_copy, SWEEP_DAY).alerts
        ids.append(
            alerts.filter(MODEL & (pl.col(s.ACTOR) == actor)).get_column(s.ALERT_ID).to_list()
        )
    assert len(ids[0]) == 1
    assert ids[0] == ids[1]


def test_an_actor_on_one_key_keeps_its_per_key_alert(lake_copy: LocalLake) -> None:
    exfiltration = SCENARIOS["S01-decrypt_exfiltration"]
    day = dt.date.fromisoformat(exfiltration["window_start"][:10])
    alerts = _model_alerts(lake_copy, day, exfiltration["actors"][0])
    assert alerts.height == 1
    assert alerts.item(0, s.KEY_ARN) == exfiltration["key_arns"][0]
    assert alerts.item(0, s.SEVERITY) == "high"


@pytest.mark.parametrize("scenario", ["D02-decoy_monthly_batch", "S03-new_outside_account_caller"])
def test_a_role_on_its_first_day_gets_no_model_alert(lake_copy: LocalLake, scenario: str) -> None:
    # The sample lake starts on 2026-11-01: the batch role's first run and the outside role
    # are new to it. Without a baseline the forest has nothing to call them unusual against.
    label = SCENARIOS[scenario]
    day = dt.date.fromisoformat(label["window_start"][:10])
    result = run(lake_copy, day, dry_run=True)
    actor = label["actors"][0]
    assert result.alerts.filter(MODEL & (pl.col(s.ACTOR) == actor)).height == 0
    assert result.summary["rows_without_history"] > 0


def test_new_roles_are_left_to_the_first_seen_rules(lake_copy: LocalLake) -> None:
    label = SCENARIOS["S03-new_outside_account_caller"]
    day = dt.date.fromisoformat(label["window_start"][:10])
    alerts = run(lake_copy, day, dry_run=True).alerts
    rule = alerts.filter(
        (pl.col(s.DETECTOR) == "KMS.NewCrossAccountCaller")
        & (pl.col(s.ACTOR) == label["actors"][0])
    )
    assert rule.filter(HIGH).height == 1


def test_a_known_actors_first_use_of_a_key_is_at_most_low(lake_copy: LocalLake) -> None:
    human = SCENARIOS["S09-human_3am_new_region"]  # a known person, on keys new to them
    day = dt.date.fromisoformat(human["window_start"][:10])
    alerts = _model_alerts(lake_copy, day, human["actors"][0])
    assert alerts.height >= 1
    assert set(alerts.get_column(s.SEVERITY).to_list()) <= {"info", "low"}
    assert all("no history of this actor on this key" in r.lower() for r in alerts[s.REASON])


@pytest.fixture(scope="module")
def month_end_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalLake, dict]:
    """35 days from 1 December: the batch runs on 3 December and again on 3 January, 31 days
    later — a gap a 30-day window does not cover."""
    root = tmp_path_factory.mktemp("month-end")
    tree, lake = root / "trail", LocalLake(root / "lake")
    generate_tree(tree, days=35, events_per_day=300, seed=7, start=dt.date(2026, 12, 1), workers=1)
    ingest(LocalSource(tree), lake, IngestOptions(workers=1))
    labels = json.loads((tree / "labels.json").read_text())
    return lake, next(x for x in labels["scenarios"] if x["id"] == "D02-decoy_monthly_batch")


def test_a_month_end_batch_with_last_months_run_in_the_window_is_not_high(
    month_end_lake: tuple[LocalLake, dict],
) -> None:
    lake, batch = month_end_lake
    day = dt.date.fromisoformat(batch["window_start"][:10])
    assert "also ran on" in batch["description"]
    result = run(lake, day, dry_run=True)
    actor = batch["actors"][0]
    assert result.alerts.filter(MODEL & (pl.col(s.ACTOR) == actor) & HIGH).height == 0
    # and it is judged against last month's run, not skipped as unknown
    first, _ = bl.window(day)
    baselines = bl.build(features.scan(lake, first, day), day)
    assert actor in baselines.actor_profile.get_column(s.ACTOR).to_list()


def test_the_first_seen_rule_says_who_and_from_where(lake_copy: LocalLake) -> None:
    human = SCENARIOS["S09-human_3am_new_region"]
    batch = SCENARIOS["D02-decoy_monthly_batch"]
    day = dt.date.fromisoformat(human["window_start"][:10])
    config = Config(detectors={"KMS.NewActorForKey": {"warmup_days": 7}})
    alerts = run(lake_copy, day, config, dry_run=True).alerts.filter(
        pl.col(s.DETECTOR) == "KMS.NewActorForKey"
    )
    person = alerts.filter(pl.col(s.ACTOR) == human["actors"][0]).get_column(s.REASON)
    assert person.len() >= 1
    for reason in person:
        assert "the actor is a person" in reason
        assert "the actor is known, this key is new to it" in reason
        assert "never seen for this actor on KMS" in reason  # the new address
        assert "in us-east-1, where this actor never called KMS before" in reason
    new_role = alerts.filter(pl.col(s.ACTOR) == batch["actors"][0]).get_column(s.REASON)
    assert new_role.len() == 1
    assert "the actor is a workload role" in new_role[0]
    assert "the actor itself made no KMS call in the previous 12 days" in new_role[0]


def test_training_does_not_call_the_lakes_first_days_new(lake_copy: LocalLake) -> None:
    # The 14-day sample lake is younger than the 35-day window: on its first days every IP,
    # region and pair is "first seen", which says nothing about them. Training rows of those
    # days must not teach the forest that novelty is ordinary.
    day = dt.date(2026, 11, 14)
    first, _ = bl.window(day)
    features.ensure_days(
        lake_copy, [first + dt.timedelta(days=i) for i in range((day - first).days)]
    )
    rows = features.scan(lake_copy, first, day).collect()
    baselines = bl.build(rows.lazy(), day)
    history = rows.filter(pl.col(s.EVENT_DATE) < day).with_columns(
        (pl.col("iso_weekday") >= 6).alias("weekend")
    )
    training = matrix(history, baselines, scoring=False)
    lake_start = dt.date(2026, 11, 1)
    early = training.filter(pl.col(s.EVENT_DATE) <= lake_start + dt.timedelta(days=2))
    assert early.height > 0
    novelty = ["new_source_ips", "new_regions", "new_user_agents", "new_key_for_actor"]
    assert early.select(pl.sum_horizontal(novelty).sum()).item() == 0
