"""Score detection against the labels of a generated tree: recall, precision, decoys.

An alert *points at* a scenario when it names one of the scenario's keys or actors and its window
overlaps the scenario's window (with ``slack`` either side, for hour-aligned model alerts). For
decoys only actors are matched when the label names any, since a decoy's key is usually shared
with ordinary traffic.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl

from analytics import schema as s
from analytics.adapters.lake import LocalLake

SLACK = dt.timedelta(hours=1)


def load_labels(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_all_alerts(lake: LocalLake) -> pl.DataFrame:
    found = sorted((lake.root / "alerts").glob(f"{s.EVENT_DATE}=*/alerts.parquet"))
    files = [path for path in found if lake.readable(path)]  # the others noted on the lake
    if not files:
        frame = pl.from_arrow(s.ALERT_SCHEMA.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame
    return pl.read_parquet(files, hive_partitioning=False)


def _pointing(alerts: pl.DataFrame, scenario: dict[str, Any], decoy: bool) -> pl.DataFrame:
    start, end = _time(scenario["window_start"]) - SLACK, _time(scenario["window_end"]) + SLACK
    actors = scenario.get("actors") or []
    keys = scenario.get("key_arns") or []
    entity = pl.col(s.ACTOR).is_in(actors)
    if not (decoy and actors):
        entity = entity | pl.col(s.KEY_ARN).is_in(keys)
    overlap = (pl.col(s.WINDOW_START) <= end) & (pl.col(s.WINDOW_END) >= start)
    return alerts.filter(entity & overlap)


def evaluate(lake: LocalLake, labels: dict[str, Any]) -> dict[str, Any]:
    alerts = read_all_alerts(lake).filter(pl.col(s.SUPPRESSED_BY).is_null())
    alerts = alerts.with_row_index("alert_row")
    high = pl.col(s.SEVERITY).is_in(["high", "critical"])
    rows = []
    malicious_rows: set[int] = set()
    scenario_days: set[dt.date] = set()
    for scenario in labels.get("scenarios", []):
        decoy = not scenario.get("malicious", False)
        matched = _pointing(alerts, scenario, decoy)
        if not decoy:
            malicious_rows.update(matched.get_column("alert_row").to_list())
            first = _time(scenario["window_start"]).date()
            last = _time(scenario["window_end"]).date()
            scenario_days.update(
                first + dt.timedelta(days=i) for i in range((last - first).days + 1)
            )
        rows.append(
            {
                "id": scenario["id"],
                "kind": scenario.get("kind"),
                "malicious": not decoy,
                "found": matched.height > 0,
                "alerts": matched.height,
                "high_alerts": matched.filter(high).height,
                "detectors": sorted(set(matched.get_column(s.DETECTOR).to_list())),
            }
        )
    malicious = [r for r in rows if r["malicious"]]
    on_days = alerts.filter(pl.col(s.EVENT_DATE).is_in(sorted(scenario_days)))
    pointing = on_days.filter(pl.col("alert_row").is_in(sorted(malicious_rows))).height
    return {
        "scenarios": rows,
        "recall": sum(r["found"] for r in malicious) / len(malicious) if malicious else 1.0,
        "precision": pointing / on_days.height if on_days.height else 1.0,
        "alerts_on_scenario_days": on_days.height,
        "decoys_with_high_alerts": [
            r["id"] for r in rows if not r["malicious"] and r["high_alerts"] > 0
        ],
        "missed": [r["id"] for r in malicious if not r["found"]],
    }
