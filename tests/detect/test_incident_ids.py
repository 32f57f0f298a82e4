"""Incident and alert IDs are a function of the events: a rerun or a backfill gives the same IDs."""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl

from analytics.adapters.lake import LocalLake
from analytics.detect.scoring import read_alerts, read_incidents, run
from analytics.lake import schema as s

DAYS = [dt.date(2026, 11, 11) + dt.timedelta(days=i) for i in range(4)]


def _ids(lake: LocalLake) -> tuple[list[tuple[str, str | None]], list[tuple[str, str, int]]]:
    alerts = pl.concat([read_alerts(lake, d) for d in DAYS])
    incidents = pl.concat([read_incidents(lake, d) for d in DAYS])
    return (
        sorted(alerts.select(s.ALERT_ID, s.INCIDENT_ID).iter_rows(), key=str),
        sorted(
            incidents.select(s.INCIDENT_ID, s.EVENT_DATE, s.ALERT_COUNT)
            .with_columns(pl.col(s.EVENT_DATE).cast(pl.String))
            .iter_rows(),
            key=str,
        ),
    )


def test_incident_and_alert_ids_survive_a_rerun_and_a_backfill(lake_copy: LocalLake) -> None:
    for day in DAYS:
        run(lake_copy, day)
    first_alerts, first_incidents = _ids(lake_copy)
    assert first_incidents, "the sample's attack days hold incidents"
    assert any(i is not None for _, i in first_alerts)

    run(lake_copy, DAYS[-1])  # the nightly job rerun for its day
    assert _ids(lake_copy) == (first_alerts, first_incidents)

    shutil.rmtree(lake_copy.root / "alerts")
    shutil.rmtree(lake_copy.root / "incidents")
    for day in DAYS:  # a backfill of the same days
        run(lake_copy, day)
    assert _ids(lake_copy) == (first_alerts, first_incidents)


def test_every_incident_id_on_an_alert_is_on_disk(lake_copy: LocalLake) -> None:
    for day in DAYS:
        run(lake_copy, day)
    for day in DAYS:
        named = set(read_alerts(lake_copy, day).get_column(s.INCIDENT_ID).drop_nulls())
        stored = set(read_incidents(lake_copy, day).get_column(s.INCIDENT_ID))
        assert named <= stored
        listed = {a for ids in read_incidents(lake_copy, day).get_column(s.ALERT_IDS) for a in ids}
        in_incidents = set(
            read_alerts(lake_copy, day)
            .filter(pl.col(s.INCIDENT_ID).is_not_null())
            .get_column(s.ALERT_ID)
        )
        assert in_incidents <= listed
