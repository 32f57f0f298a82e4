"""What normal looks like: robust baselines over a trailing window of hourly features.

Built only from days *before* the scored day, so a backfill scores each day as the nightly run
would have. Volume baselines are robust (median and MAD, not mean and standard deviation: one
burst must not widen the band that should catch the next) and seasonal: per hour of day and
weekday/weekend, with the hours an entity was silent counted as zeros. First/last-seen tables
answer "never seen before" questions for (key, actor), (actor, IP), (actor, region),
(actor, user-agent family) and (key, caller account).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from analytics.lake import schema as s

MIN_WINDOW_DAYS = 7
DEFAULT_WINDOW_DAYS = 35
"""Five weeks: every weekday counted five times, and a monthly job's previous run is always
inside the window — months are at most 31 days apart, and a "last business day" job moves by
up to three days more. A month-end batch is then something the (key, actor) pair has done
before (its busiest hours, IPs, hours of day), not a surge against nothing. Remembering
day-of-month patterns explicitly would need a year of history to learn a calendar; one more
week of window needs nothing new."""
MAD_TO_SIGMA = 1.4826  # scales a MAD to a standard deviation for normal data

PAIR = [s.KEY_ARN, s.ACTOR]
FIRST_SEEN_PAIRS: dict[str, tuple[str, str]] = {
    # name → (entity column, list column of the features whose elements are the other side)
    "actor_ip": (s.ACTOR, "source_ips"),
    "actor_region": (s.ACTOR, "regions"),
    "actor_user_agent": (s.ACTOR, "user_agent_families"),
    "key_caller_account": (s.KEY_ARN, "caller_accounts"),
}


@dataclass(frozen=True)
class Baselines:
    """Baselines for one scored day, built from ``window_first``..``window_last``."""

    day: dt.date
    window_first: dt.date
    window_last: dt.date
    history_days: int
    pair_seasonal: pl.DataFrame
    pair_profile: pl.DataFrame
    actor_profile: pl.DataFrame
    key_profile: pl.DataFrame
    actor_hours: pl.DataFrame
    first_seen: dict[str, pl.DataFrame]
    data_first: dt.date | None = None
    """The first day of the window with features: a lake younger than the window starts here."""

    @property
    def novelty_from(self) -> dt.date:
        """From this day on, a value first seen in the window is news; before it (the first
        days the lake has), everything is first seen and says nothing."""
        return (self.data_first or self.window_first) + dt.timedelta(days=2)

    @property
    def warm(self) -> bool:
        """Enough history for baselines to mean something."""
        return self.history_days >= MIN_WINDOW_DAYS


def window(day: dt.date, window_days: int = DEFAULT_WINDOW_DAYS) -> tuple[dt.date, dt.date]:
    if window_days < MIN_WINDOW_DAYS:
        raise ValueError(f"baseline window must be at least {MIN_WINDOW_DAYS} days")
    return day - dt.timedelta(days=window_days), day - dt.timedelta(days=1)


def _weekend(column: str = "iso_weekday") -> pl.Expr:
    return (pl.col(column) >= 6).alias("weekend")


def _padded(values: str, total: pl.Expr) -> pl.Expr:
    """The observed values plus a zero for every silent slot, so medians see the quiet hours."""
    zeros = pl.lit(0, pl.Int64).repeat_by((total - pl.col(values).list.len()).clip(0, None))
    return pl.concat_list(pl.col(values), zeros)


def _median_and_mad(values: pl.Expr, prefix: str) -> list[pl.Expr]:
    median = values.list.median()
    mad = values.list.eval((pl.element() - pl.element().median()).abs().median()).list.first()
    return [median.alias(f"{prefix}_median"), mad.alias(f"{prefix}_mad")]


def build(
    features: pl.LazyFrame,
    day: dt.date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    history_days: int | None = None,
) -> Baselines:
    """Baselines for scoring ``day`` from the hourly features of the window before it.

    ``history_days`` is how many days of the window the lake holds (detection counts event
    partitions, so a day without KMS calls still counts); by default, the days with features.
    """
    first, last = window(day, window_days)
    history = (
        features.filter(pl.col(s.EVENT_DATE).is_between(first, last))
        .with_columns(_weekend())
        .collect()
    )
    days_present = history.get_column(s.EVENT_DATE).unique()
    if history_days is None:
        history_days = days_present.len()
    calendar = pl.DataFrame(
        {s.EVENT_DATE: pl.date_range(first, last, "1d", eager=True)}
    ).with_columns((pl.col(s.EVENT_DATE).dt.weekday() >= 6).alias("weekend"))
    # Silent days only count as zeros from the first day the lake has data: a lake younger than
    # the window must not look like a month of silence.
    if days_present.len():
        calendar = calendar.filter(pl.col(s.EVENT_DATE) >= days_present.min())
    slots = calendar.group_by("weekend").agg(pl.len().alias("days_in_window"))
    pair_seasonal = (
        history.group_by([*PAIR, "hour_of_day", "weekend"])
        .agg(pl.col("calls"), pl.col("errors").sum().alias("errors_total"))
        .join(slots, on="weekend", how="left")
        .with_columns(_padded("calls", pl.col("days_in_window")).alias("calls"))
        .with_columns(_median_and_mad(pl.col("calls"), "calls"))
        .with_columns(pl.col("calls").list.max().alias("calls_max"))
        .drop("calls")
    )
    pair_profile = history.group_by(PAIR).agg(
        pl.col("calls").sum().alias("total_calls"),
        pl.col("calls").median().alias("active_hour_median"),
        pl.col("calls").quantile(0.99, "higher").alias("active_hour_p99"),
        pl.col("calls").max().alias("active_hour_max"),
        pl.len().alias("active_hours"),
        pl.col(s.EVENT_DATE).n_unique().alias("active_days"),
        (pl.col("errors").sum() / pl.col("calls").sum()).alias("error_ratio"),
        (pl.col("errors") / pl.col("calls")).quantile(0.99, "higher").alias("error_ratio_p99"),
        pl.col(s.EVENT_DATE).min().alias("first_seen"),
        pl.col(s.EVENT_DATE).max().alias("last_seen"),
    )
    actor_hourly = history.group_by([s.ACTOR, "hour_start", "hour_of_day"]).agg(
        pl.col("calls").sum(),
        pl.col(s.KEY_ARN).n_unique().alias("distinct_keys"),
        (
            pl.col("access_denied_errors")
            + pl.col("invalid_ciphertext_errors")
            + pl.col("invalid_state_errors")
        )
        .sum()
        .alias("failures"),
    )
    actor_profile = actor_hourly.group_by(s.ACTOR).agg(
        pl.col("calls").sum().alias("total_calls"),
        pl.col("distinct_keys").quantile(0.99, "higher").alias("distinct_keys_p99"),
        pl.col("failures").quantile(0.99, "higher").alias("failures_p99"),
        pl.col("failures").max().alias("failures_max"),
        pl.len().alias("active_hours"),
    )
    hour_share = (
        actor_hourly.group_by([s.ACTOR, "hour_of_day"])
        .agg(pl.col("calls").sum().alias("hour_calls"))
        .with_columns(
            (pl.col("hour_calls") / pl.col("hour_calls").sum().over(s.ACTOR)).alias("hour_share")
        )
    )
    actor_profile = actor_profile.join(
        hour_share.group_by(s.ACTOR).agg(
            pl.col("hour_of_day").sort_by("hour_share", descending=True).alias("usual_hours"),
            pl.col("hour_share").sort(descending=True).alias("usual_hour_shares"),
        ),
        on=s.ACTOR,
        how="left",
    )
    key_profile = (
        history.group_by([s.KEY_ARN, s.EVENT_DATE])
        .agg(pl.col(s.ACTOR).n_unique().alias("actors"), pl.col("calls").sum())
        .group_by(s.KEY_ARN)
        .agg(
            pl.col("actors").median().alias("daily_actors_median"),
            pl.col("calls").median().alias("daily_calls_median"),
            pl.len().alias("active_days"),
        )
    )
    first_seen = {"key_actor": pair_profile.select([*PAIR, "first_seen", "last_seen"])}
    for name, (entity, values) in FIRST_SEEN_PAIRS.items():
        first_seen[name] = (
            history.select(entity, s.EVENT_DATE, pl.col(values).alias("value"))
            .explode("value")
            .drop_nulls("value")
            .group_by([entity, "value"])
            .agg(
                pl.col(s.EVENT_DATE).min().alias("first_seen"),
                pl.col(s.EVENT_DATE).max().alias("last_seen"),
            )
        )
    return Baselines(
        day=day,
        window_first=first,
        window_last=last,
        history_days=history_days,
        pair_seasonal=pair_seasonal,
        pair_profile=pair_profile,
        actor_profile=actor_profile,
        key_profile=key_profile,
        actor_hours=hour_share.select(s.ACTOR, "hour_of_day", "hour_share"),
        first_seen=first_seen,
        data_first=days_present.min() if days_present.len() else None,  # type: ignore[arg-type]
    )
