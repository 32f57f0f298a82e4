"""Score detection against the labels of a generated tree: recall, precision, decoys, triage.

An alert *points at* a scenario when it names one of the scenario's keys or actors and its window
overlaps the scenario's window (with ``slack`` either side, for hour-aligned model alerts). For
decoys only actors are matched when the label names any, since a decoy's key is usually shared
with ordinary traffic.

An analyst triages incidents, not alerts, so each scenario also says how many things it took to
triage: the incidents pointing at it (an incident points at a scenario when any of its alerts
does) plus the alerts outside any incident pointing at it. Incidents are read in their latest
view (the day file where each was last extended), which lists every alert they hold.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl

from analytics import api
from analytics.adapters.lake import LocalLake
from analytics.lake import schema as s

SLACK = dt.timedelta(hours=1)
NOTHING_TO_SCORE = "no labelled scenarios: nothing to score"


def load_labels(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def has_scenarios(labels: dict[str, Any]) -> bool:
    """Whether the labels hold an attack to find: without one, recall and precision are
    vacuous (100% of nothing), so callers say there is nothing to score instead."""
    return any(scenario.get("malicious", False) for scenario in labels.get("scenarios", []))


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_all_alerts(lake: LocalLake) -> pl.DataFrame:
    """Every alert of every scored day, suppressed ones included (old files conformed)."""
    return api.alerts(api.Lake(lake), include_suppressed=True)


def _incident_of(incidents: pl.DataFrame) -> pl.DataFrame:
    """``alert_id`` → ``incident_id`` and the incident's severity, from each incident's latest
    view (an earlier day's alert joined the next day is listed there, not in its own file)."""
    return (
        incidents.select(
            s.INCIDENT_ID,
            pl.col(s.SEVERITY).alias("incident_severity"),
            pl.col(s.ALERT_IDS).alias(s.ALERT_ID),
        )
        .explode(s.ALERT_ID)
        .drop_nulls(s.ALERT_ID)
        .unique(s.ALERT_ID, keep="first", maintain_order=True)
        .rename({s.INCIDENT_ID: "in_incident"})
    )


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
    incidents = api.incidents(api.Lake(lake))
    alerts = alerts.join(_incident_of(incidents), on=s.ALERT_ID, how="left", maintain_order="left")
    alerts = alerts.with_row_index("alert_row")
    high = pl.col(s.SEVERITY).is_in(["high", "critical"])
    high_incident = pl.col("incident_severity").is_in(["high", "critical"])
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
                "incidents": matched.get_column("in_incident").drop_nulls().n_unique(),
                "to_triage": matched.get_column("in_incident").drop_nulls().n_unique()
                + matched.filter(pl.col("in_incident").is_null()).height,
                "in_high_incident": matched.filter(high_incident).height > 0,
                "detectors": sorted(set(matched.get_column(s.DETECTOR).to_list())),
            }
        )
    malicious = [r for r in rows if r["malicious"]]
    on_days = alerts.filter(pl.col(s.EVENT_DATE).is_in(sorted(scenario_days)))
    pointing = on_days.filter(pl.col("alert_row").is_in(sorted(malicious_rows))).height
    # Things an analyst would be paged for that no attack explains: a high or critical incident
    # none of whose alerts points at an attack, or such an alert outside any incident.
    attack = pl.col("alert_row").is_in(sorted(malicious_rows))
    explained = set(alerts.filter(attack).get_column("in_incident").drop_nulls().to_list())
    stray_incidents = incidents.filter(
        pl.col(s.SEVERITY).is_in(["high", "critical"]) & ~pl.col(s.INCIDENT_ID).is_in(explained)
    )
    stray_alerts = alerts.filter(high & pl.col("in_incident").is_null() & ~attack)
    return {
        "scenarios": rows,
        "recall": sum(r["found"] for r in malicious) / len(malicious) if malicious else 1.0,
        "precision": pointing / on_days.height if on_days.height else 1.0,
        "alerts_on_scenario_days": on_days.height,
        "decoys_with_high_alerts": [
            r["id"] for r in rows if not r["malicious"] and r["high_alerts"] > 0
        ],
        "missed": [r["id"] for r in malicious if not r["found"]],
        "scored_days": [d.isoformat() for d in api.Lake(lake).alert_dates()],
        "incidents": incidents.height,
        "high_outside_attacks": stray_incidents.height + stray_alerts.height,
        "high_incidents_outside_attacks": sorted(stray_incidents.get_column(s.INCIDENT_ID)),
        "high_alerts_outside_attacks": sorted(stray_alerts.get_column(s.ALERT_ID)),
        "decoys_in_high_incidents": [
            r["id"] for r in rows if not r["malicious"] and r["in_high_incident"]
        ],
        "max_to_triage": max((r["to_triage"] for r in malicious), default=0),
    }
