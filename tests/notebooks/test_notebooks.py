"""The analyst notebooks run top to bottom against a scored sample lake, and compute the right
figures: each notebook writes what it computed to a JSON file, and these tests check it against
the lake read directly with Polars (not through the API the notebooks use)."""

from __future__ import annotations

import ast
import datetime as dt
import tomllib
from pathlib import Path

import nbformat
import polars as pl
import pytest

from analytics.lake import schema as s
from analytics.adapters.lake import LocalLake
from analytics.config import parse
from tests.hive import read_table
from tests.notebooks.conftest import NOTEBOOKS, SCORED_DAYS, run_notebook

pytestmark = pytest.mark.xdist_group("notebooks")

KMS = "kms.amazonaws.com"
NAMES = ("01_key_usage.ipynb", "02_investigate_alert.ipynb", "03_tune_detection.ipynb")


def _events(lake: LocalLake) -> pl.DataFrame:
    return read_table(lake.root / "events", s.EVENT_COLUMNS)


def _alerts(lake: LocalLake) -> pl.DataFrame:
    return read_table(lake.root / "alerts", s.ALERT_COLUMNS, "alerts")


def _incidents(lake: LocalLake) -> pl.DataFrame:
    return read_table(lake.root / "incidents", s.INCIDENT_SCHEMA.names, "incidents")


def _code_cells(name: str) -> list[str]:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_reads_the_lake_only_through_the_public_api(name: str) -> None:
    imported = set()
    for source in _code_cells(name):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.split(".")[0] in ("analytics", "flows")}
    assert ours == {"analytics.api"}


def test_key_usage_notebook(scored_lake: LocalLake, tmp_path: Path) -> None:
    results = run_notebook("01_key_usage.ipynb", scored_lake.root, tmp_path / "r.json")
    day, start = dt.date(2026, 11, 14), dt.date(2026, 11, 8)
    events = _events(scored_lake)
    kms = events.filter((pl.col("event_source") == KMS) & pl.col("actor").is_not_null())
    busiest = (
        kms.filter((pl.col("event_date") == day) & pl.col("key_arn").is_not_null())
        .group_by("key_arn")
        .len()
        .sort(["len", "key_arn"], descending=[True, False])
    )
    key = busiest.item(0, "key_arn")
    on_key = kms.filter((pl.col("key_arn") == key) & pl.col("event_date").is_between(start, day))
    assert results["key"] == key
    assert (results["start"], results["day"]) == (start.isoformat(), day.isoformat())
    assert results["hourly_rows"] == 7 * 24
    assert results["key_calls"] == on_key.height
    assert results["stacked_calls"] == on_key.height
    assert sum(results["actor_calls_on_key"].values()) == on_key.height
    by_actor = on_key.group_by("actor").len().sort(["len", "actor"], descending=[True, False])
    assert results["actor"] == by_actor.item(0, "actor") == results["top_actors"][0]
    assert results["actors"] == by_actor.height
    assert results["pair_calls"] == by_actor.item(0, "len")
    failed = on_key.filter(
        pl.col("error_code").is_not_null() & (pl.col("error_code") != "DryRunOperationException")
    )
    assert results["errors_from_features"] == results["kms_errors_from_events"] == failed.height
    assert sum(results["errors_by_code"].values()) >= failed.height
    assert results["band_history_days"] >= 7


def test_investigate_alert_notebook(scored_lake: LocalLake, tmp_path: Path) -> None:
    alerts = _alerts(scored_lake)
    outside_caller = "arn:aws:iam::391746365101:role/partner-data-sync"
    # A caller with no history is the first-seen rule's to report, not the model's.
    target = alerts.filter(
        (pl.col("detector") == "KMS.NewCrossAccountCaller") & (pl.col("actor") == outside_caller)
    ).row(0, named=True)
    results = run_notebook(
        "02_investigate_alert.ipynb",
        scored_lake.root,
        tmp_path / "r.json",
        ALERT_ID=target["alert_id"][:10],  # people paste prefixes
    )
    assert results["alert_id"] == target["alert_id"]
    assert results["detector"] == "KMS.NewCrossAccountCaller"
    ids = target["evidence_event_ids"]
    assert results["evidence_ids"] == ids
    assert results["evidence_rows"] == len(set(ids)) > 0
    assert sorted(results["evidence_event_ids_found"]) == sorted(set(ids))
    assert results["evidence_missing"] == []
    assert results["evidence_count"] == target["evidence_count"] >= len(ids)
    assert results["timeline_rows"] == (3 + 1) * 24
    assert results["timeline_calls"] >= len(ids)
    assert results["history_days"] == 12
    new = {tuple(pair) for pair in results["new"]}
    assert ("key_actor", target["key_arn"]) in new  # never used this key before
    assert ("key_caller_account", "391746365101") in new  # an account never seen on the key
    day = target["event_date"]
    related = alerts.filter(
        (pl.col("alert_id") != target["alert_id"])
        & pl.col("event_date").is_between(day - dt.timedelta(days=7), day + dt.timedelta(days=7))
        & ((pl.col("key_arn") == target["key_arn"]) | (pl.col("actor") == target["actor"]))
    )
    assert sorted(results["related_ids"]) == sorted(related.get_column("alert_id").to_list())
    # The alert's incident, if it has one; an alert standing alone is investigated by itself.
    holding = _incidents(scored_lake).filter(pl.col("alert_ids").list.contains(target["alert_id"]))
    if holding.height:
        assert results["incident_id"] == holding.sort("event_date").item(-1, "incident_id")
        assert target["alert_id"] in results["incident_alerts_found"]
        assert sorted(results["incident_alerts_found"]) == sorted(results["incident_alert_ids"])
    else:
        assert target["incident_id"] is None
        assert (results["incident_id"], results["incident_alert_ids"]) == (None, [])


def test_investigate_notebook_starts_from_the_most_severe_incident(
    scored_lake: LocalLake, tmp_path: Path
) -> None:
    results = run_notebook("02_investigate_alert.ipynb", scored_lake.root, tmp_path / "r.json")
    last = SCORED_DAYS[-1]
    rank = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    day = _incidents(scored_lake).filter(pl.col("event_date") == last)
    worst = max(day.iter_rows(named=True),
                key=lambda i: (rank[i["severity"]], -i["first_seen"].timestamp()))  # fmt: skip
    assert results["incident_id"] == worst["incident_id"]
    assert results["incident_alert_ids"] == list(worst["alert_ids"])
    assert results["incident_timeline_rows"] == worst["alert_count"]
    assert sorted(results["incident_alerts_found"]) == sorted(worst["alert_ids"])
    members = _alerts(scored_lake).filter(pl.col("alert_id").is_in(worst["alert_ids"]))
    top = max(rank[s] for s in members.get_column("severity").to_list())
    assert results["alert_id"] in worst["alert_ids"]
    assert rank[results["severity"]] == top


def test_tune_detection_notebook(scored_lake: LocalLake, tmp_path: Path) -> None:
    # The default three days: the enumeration day gives a rule firing several times for one
    # actor (the suppression candidates) now that the model raises one alert per sweep.
    results = run_notebook("03_tune_detection.ipynb", scored_lake.root, tmp_path / "r.json")
    days = [d.isoformat() for d in SCORED_DAYS]
    assert results["days"] == days
    stored = _alerts(scored_lake).filter(
        pl.col("event_date").is_in(SCORED_DAYS) & pl.col("suppressed_by").is_null()
    )
    # A dry run with the current settings raises exactly what detection stored.
    expected = dict(stored.group_by("detector").len().iter_rows())
    assert results["alerts"]["current"] == expected
    for day in days:
        model_alerts = stored.filter(
            (pl.col("detector") == "KMS.UnusualKeyUsage")
            & (pl.col("event_date") == dt.date.fromisoformat(day))
        )
        # one alert per flagged (key, actor) pair, the day being one merge window; except an
        # actor flagged on several keys: one sweep alert (no key) saying how many
        swept = model_alerts.filter(pl.col("key_arn").is_null()).get_column("reason")
        swept_keys = swept.str.extract(r"^Unusual use of (\d+) keys", 1).cast(pl.Int64)
        per_key = model_alerts.filter(pl.col("key_arn").is_not_null()).height
        assert results["flagged_pairs"][day] == per_key + swept_keys.sum()
        assert results["rows_scored"][day] > 100
        assert results["thresholds"][day] is not None
    current = results["alerts"]["current"]
    for variant in ("score_quantile 0.001→0.01", "min_calls 20→5"):
        counts = results["alerts"][variant]
        # looser model thresholds only add model alerts, and leave the rules alone
        assert counts["KMS.UnusualKeyUsage"] >= current["KMS.UnusualKeyUsage"]
        rules = {k: v for k, v in counts.items() if k != "KMS.UnusualKeyUsage"}
        assert rules == {k: v for k, v in current.items() if k != "KMS.UnusualKeyUsage"}
    candidates = results["candidates"]
    assert candidates, "the sample days have detectors firing several times for one actor"
    for detector, actor, count in candidates:
        same = stored.filter((pl.col("detector") == detector) & (pl.col("actor") == actor))
        assert count == same.height >= 2
    document = tomllib.loads(results["proposal"])
    (suppression,) = parse(document).suppressions
    assert (suppression.detector, suppression.actor) == tuple(candidates[0][:2])
    assert results["suppressed"] == candidates[0][2]
