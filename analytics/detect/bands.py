"""Each alerted key's hourly use on the report day against its usual range: the chart data.

The band is per hour of day, taken over the days of the baseline window that have data — the
10th to the 90th percentile of the key's calls in that hour, with the median — so a reader sees
at a glance whether 13:00's 4,000 decrypts are the key's ordinary lunchtime batch or something
new. Like the model's seasonal baselines, weekdays are compared with weekdays and weekends with
weekends once there are at least :data:`MIN_SAME_KIND_DAYS` of the same kind; before that, every
day counts. Hours a key was silent count as zero (a key used once a week must not get a band
drawn from its busy days only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl

from analytics.detect.baselines import DEFAULT_WINDOW_DAYS
from analytics.lake import schema as s

BAND_LOW_QUANTILE = 0.10
BAND_HIGH_QUANTILE = 0.90
MIN_SAME_KIND_DAYS = 4

BAND_COLUMNS = ("key_arn", "hour_of_day", "calls", "band_low", "band_median", "band_high",
                "history_days")  # fmt: skip


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            s.KEY_ARN: pl.String,
            "hour_of_day": pl.Int32,
            "calls": pl.Int64,
            "band_low": pl.Float64,
            "band_median": pl.Float64,
            "band_high": pl.Float64,
            "history_days": pl.Int64,
        }
    )


def build(
    features: pl.DataFrame,
    day: dt.date,
    keys: Iterable[str],
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> pl.DataFrame:
    """24 rows per key: the day's calls per hour and the band of the window before it.

    ``features`` are hourly feature rows (:mod:`analytics.detect.features`) of the window and the
    day.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return _empty()
    first = day - dt.timedelta(days=window_days)
    rows = features.filter(pl.col(s.EVENT_DATE).is_between(first, day)).select(
        s.EVENT_DATE, pl.col("hour_of_day").cast(pl.Int32), s.KEY_ARN, "calls"
    )
    history_dates = sorted(d for d in rows.get_column(s.EVENT_DATE).unique().to_list() if d < day)
    weekend = day.isoweekday() >= 6
    same_kind = [d for d in history_dates if (d.isoweekday() >= 6) == weekend]
    dates = same_kind if len(same_kind) >= MIN_SAME_KIND_DAYS else history_dates
    per_hour = (
        rows.filter(pl.col(s.KEY_ARN).is_in(wanted))
        .group_by(s.KEY_ARN, s.EVENT_DATE, "hour_of_day")
        .agg(pl.col("calls").sum().cast(pl.Int64))
    )
    hours = pl.DataFrame({"hour_of_day": pl.int_range(0, 24, eager=True).cast(pl.Int32)})
    key_frame = pl.DataFrame({s.KEY_ARN: wanted}, schema={s.KEY_ARN: pl.String})
    today = (
        key_frame.join(hours, how="cross")
        .join(
            per_hour.filter(pl.col(s.EVENT_DATE) == day).drop(s.EVENT_DATE),
            on=[s.KEY_ARN, "hour_of_day"],
            how="left",
        )
        .with_columns(pl.col("calls").fill_null(0))
    )
    if not dates:
        return (
            today.with_columns(
                pl.lit(None, pl.Float64).alias("band_low"),
                pl.lit(None, pl.Float64).alias("band_median"),
                pl.lit(None, pl.Float64).alias("band_high"),
                pl.lit(0, pl.Int64).alias("history_days"),
            )
            .select(BAND_COLUMNS)
            .sort(s.KEY_ARN, "hour_of_day")
        )
    grid = key_frame.join(pl.DataFrame({s.EVENT_DATE: dates}), how="cross").join(hours, how="cross")
    history = grid.join(per_hour, on=[s.KEY_ARN, s.EVENT_DATE, "hour_of_day"], how="left")
    band = (
        history.with_columns(pl.col("calls").fill_null(0).cast(pl.Float64))
        .group_by(s.KEY_ARN, "hour_of_day")
        .agg(
            pl.col("calls").quantile(BAND_LOW_QUANTILE, "linear").alias("band_low"),
            pl.col("calls").median().alias("band_median"),
            pl.col("calls").quantile(BAND_HIGH_QUANTILE, "linear").alias("band_high"),
        )
    )
    return (
        today.join(band, on=[s.KEY_ARN, "hour_of_day"], how="left")
        .with_columns(pl.lit(len(dates), pl.Int64).alias("history_days"))
        .select(BAND_COLUMNS)
        .sort(s.KEY_ARN, "hour_of_day")
    )


def hours_above(band: pl.DataFrame, key: str) -> list[tuple[int, int, float, float]]:
    """(hour, calls, band_low, band_high) for the hours where the key was above its band."""
    rows = band.filter(
        (pl.col(s.KEY_ARN) == key)
        & pl.col("band_high").is_not_null()
        & (pl.col("calls") > pl.col("band_high"))
    )
    return [
        (int(h), int(c), float(lo), float(hi))
        for h, c, lo, hi in rows.select("hour_of_day", "calls", "band_low", "band_high").iter_rows()
    ]
