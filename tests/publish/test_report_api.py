"""The report and the analyst API agree: same day's events, same alerts, same baseline bands."""

from __future__ import annotations

import polars as pl

from analytics import api
from analytics.ingest.identity import KMS_SOURCE
from analytics.lake import schema as s
from analytics.publish.reports import inputs
from tests.hive import read_table
from tests.publish.conftest import GENERATED_DAY, BuiltReport

BAND = ["hour_of_day", "calls", "band_low", "band_median", "band_high", "history_days"]


def test_report_bands_are_the_api_baseline_band(generated_report: BuiltReport) -> None:
    lake = api.Lake(generated_report.lake)
    bands = generated_report.report.bands
    keys = bands.get_column(s.KEY_ARN).unique().sort().to_list()
    assert keys, "the generated day should chart at least one alerted key"
    for key in keys:
        ours = api.baseline_band(lake, key_arn=key, start=GENERATED_DAY, end=GENERATED_DAY)
        theirs = bands.filter(pl.col(s.KEY_ARN) == key)
        assert ours.select(BAND).equals(theirs.select(BAND)), key


def test_report_alerts_and_kms_calls_are_the_apis(generated_report: BuiltReport) -> None:
    lake = api.Lake(generated_report.lake)
    report = generated_report.report
    listed = api.alerts(lake, GENERATED_DAY, GENERATED_DAY, include_suppressed=True)
    assert sorted(report.alerts.get_column(s.ALERT_ID)) == sorted(listed.get_column(s.ALERT_ID))
    day = api.events(lake, start=GENERATED_DAY, end=GENERATED_DAY, columns=[s.EVENT_SOURCE])
    assert report.headline["kms_calls"] == day.filter(pl.col(s.EVENT_SOURCE) == KMS_SOURCE).height


def test_report_reads_the_day_as_stored(generated_report: BuiltReport) -> None:
    """The day's events are the partition's rows in stored order: no filter, no sorted copy."""
    lake = generated_report.lake
    loaded = inputs.load(lake, GENERATED_DAY)
    stored = read_table(lake.events_dir, s.EVENT_COLUMNS)
    assert loaded.day_events.equals(stored.filter(pl.col(s.EVENT_DATE) == GENERATED_DAY))
    assert loaded.hourly_features.get_column(s.EVENT_DATE).max() == GENERATED_DAY
