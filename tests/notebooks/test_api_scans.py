"""api.scan_events and api.hourly_features: the lazy history and raw feature rows of the API."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from analytics import api
from analytics.lake import schema as s
from analytics.adapters.lake import LocalLake
from tests.hive import read_table

pytestmark = pytest.mark.xdist_group("notebooks")

DAY = dt.date(2026, 11, 14)


@pytest.fixture(scope="module")
def lake(scored_lake: LocalLake) -> api.Lake:
    return api.open_lake(scored_lake.root)


def test_scan_of_a_day_is_its_partition_as_stored(lake: api.Lake) -> None:
    scanned = api.scan_events(lake, DAY, DAY).collect()
    stored = read_table(lake.root / "events", s.EVENT_COLUMNS)
    assert scanned.equals(stored.filter(pl.col(s.EVENT_DATE) == DAY))


def test_scan_days_are_inclusive_and_open_ends_reach_the_lake_edges(lake: api.Lake) -> None:
    def days(scan: pl.LazyFrame) -> list[dt.date]:
        return scan.select(s.EVENT_DATE).unique().sort(s.EVENT_DATE).collect().to_series().to_list()

    assert days(api.scan_events(lake, "2026-11-12", DAY)) == lake.event_dates()[-3:]
    assert days(api.scan_events(lake, end=DAY)) == lake.event_dates()
    assert days(api.scan_events(lake, start=dt.datetime(2026, 11, 14, 9, tzinfo=dt.UTC))) == [DAY]
    assert api.scan_events(lake, end=lake.first_day - dt.timedelta(days=1)).collect().height == 0


def test_scan_pushes_the_projection_into_the_reader(lake: api.Lake) -> None:
    plan = api.scan_events(lake).select(s.KEY_ARN, s.ACTOR).explain()
    assert f"PROJECT 2/{len(s.EVENT_FILE_SCHEMA)} COLUMNS" in plan


def test_hourly_features_add_up_to_hourly_usage(lake: api.Lake) -> None:
    rows = api.hourly_features(lake, DAY, DAY)
    usage = api.hourly_usage(lake, start=DAY, end=DAY)
    assert rows.get_column(s.EVENT_DATE).unique().to_list() == [DAY]
    assert rows.get_column("calls").sum() == usage.get_column("calls").sum() > 0


def test_hourly_features_refuse_a_backwards_range(lake: api.Lake) -> None:
    with pytest.raises(ValueError, match="after end"):
        api.hourly_features(lake, DAY, DAY - dt.timedelta(days=1))
