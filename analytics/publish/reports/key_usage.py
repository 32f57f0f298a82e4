"""The Key Usage Logs summary of one day: per key, who called it, how, and what failed; per
actor, which keys it used.

This is the table a key owner reads first ("is anyone new using my key?") and the one an auditor
asks for as "key usage logs" — a day of CloudTrail condensed to one row per key. Everything is
counted from the day's KMS events only; "new" means never seen with that key anywhere earlier in
the lake, so the first day of a lake calls everything new (the report says how far back the lake
goes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from analytics.ingest.identity import KMS_SOURCE
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports.tables import conform_frame

DEFAULT_TOP_ACTORS = 5
UNIDENTIFIED = "(unidentified)"


def _failed() -> pl.Expr:
    return pl.col(s.ERROR_CODE).is_not_null() & (pl.col(s.ERROR_CODE) != "")


def _kms(day_events: pl.DataFrame) -> pl.DataFrame:
    return day_events.filter(pl.col(s.EVENT_SOURCE) == KMS_SOURCE).with_columns(
        pl.col(s.ACTOR).fill_null(UNIDENTIFIED)
    )


def _counted(frame: pl.DataFrame, group: str, value: str, alias: str) -> pl.DataFrame:
    """Per ``group``, a list of {name, count} of ``value``, busiest first, ties by name."""
    return (
        frame.group_by(group, value)
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .sort([group, "count", value], descending=[False, True, False])
        .group_by(group, maintain_order=True)
        .agg(pl.struct(pl.col(value).alias("name"), pl.col("count")).alias(alias))
    )


def _empty_pairs() -> pl.DataFrame:
    return pl.DataFrame(schema={s.KEY_ARN: pl.String, s.ACTOR: pl.String})


def new_pairs(day_pairs: pl.DataFrame, prior_pairs: pl.DataFrame) -> pl.DataFrame:
    """(key, actor) pairs of the day that the lake never saw before it."""
    return day_pairs.join(prior_pairs.select(s.KEY_ARN, s.ACTOR), on=[s.KEY_ARN, s.ACTOR],
                          how="anti", nulls_equal=True)  # fmt: skip


def by_key(
    day_events: pl.DataFrame,
    day: dt.date,
    prior_pairs: pl.DataFrame | None = None,
    alerts: pl.DataFrame | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    top_actors: int = DEFAULT_TOP_ACTORS,
) -> pl.DataFrame:
    """One row per key used on ``day`` (see
    :data:`analytics.publish.reports.schemas.KEY_USAGE_SCHEMA`)."""
    kms = _kms(day_events).filter(pl.col(s.KEY_ARN).is_not_null())
    base = kms.group_by(s.KEY_ARN).agg(
        pl.len().cast(pl.Int64).alias(r.CALLS),
        _failed().sum().cast(pl.Int64).alias(r.ERRORS),
        pl.col(s.KEY_ACCOUNT_ID).drop_nulls().min().alias(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION).drop_nulls().min().alias(s.AWS_REGION),
        pl.col(s.ACTOR).n_unique().cast(pl.Int64).alias("distinct_actors"),
        pl.col(s.SOURCE_IP).drop_nulls().n_unique().cast(pl.Int64).alias("distinct_source_ips"),
        pl.col(s.PRINCIPAL_ACCOUNT_ID).drop_nulls().unique().sort().alias("caller_accounts"),
        (
            pl.col(s.PRINCIPAL_ACCOUNT_ID).is_not_null()
            & pl.col(s.KEY_ACCOUNT_ID).is_not_null()
            & (pl.col(s.PRINCIPAL_ACCOUNT_ID) != pl.col(s.KEY_ACCOUNT_ID))
        )
        .sum()
        .cast(pl.Int64)
        .alias("cross_account_calls"),
        pl.col(s.EVENT_TIME).min().alias(r.FIRST_CALL),
        pl.col(s.EVENT_TIME).max().alias(r.LAST_CALL),
    )
    operations = _counted(kms, s.KEY_ARN, s.EVENT_NAME, "calls_by_operation")
    actors = _counted(kms, s.KEY_ARN, s.ACTOR, "actors")
    errors = _counted(kms.filter(_failed()), s.KEY_ARN, s.ERROR_CODE, "errors_by_code")
    pairs = kms.select(s.KEY_ARN, s.ACTOR).unique()
    fresh = (
        new_pairs(pairs, prior_pairs if prior_pairs is not None else _empty_pairs())
        .sort(s.KEY_ARN, s.ACTOR)
        .group_by(s.KEY_ARN, maintain_order=True)
        .agg(pl.col(s.ACTOR).alias("new_actors"))
    )
    frame = (
        base.join(operations, on=s.KEY_ARN, how="left")
        .join(actors, on=s.KEY_ARN, how="left")
        .join(errors, on=s.KEY_ARN, how="left")
        .join(fresh, on=s.KEY_ARN, how="left")
        .join(_alerts_per_key(alerts), on=s.KEY_ARN, how="left")
        .with_columns(
            pl.lit(day).alias(s.EVENT_DATE),
            pl.col("caller_accounts").list.len().cast(pl.Int64).alias("distinct_caller_accounts"),
            pl.col("actors").list.head(top_actors).alias("top_actors"),
            (pl.col("actors").list.len().cast(pl.Int64) - top_actors).clip(0).alias("other_actors"),
            (
                pl.col(r.CALLS)
                - pl.col("actors")
                .list.head(top_actors)
                .list.eval(pl.element().struct.field("count"))
                .list.sum()
            )
            .cast(pl.Int64)
            .alias("other_actor_calls"),
            pl.col("errors_by_code").fill_null([]),
            pl.col("new_actors").fill_null([]),
            pl.col(r.ALERTS).fill_null(0),
            pl.col("suppressed_alerts").fill_null(0),
            pl.col(r.ALERT_IDS).fill_null([]),
        )
    )
    alias_frame = pl.DataFrame(
        {
            s.KEY_ARN: list((aliases or {}).keys()),
            r.ALIASES: [sorted(v) for v in (aliases or {}).values()],
        },
        schema={s.KEY_ARN: pl.String, r.ALIASES: pl.List(pl.String)},
    )
    frame = frame.join(alias_frame, on=s.KEY_ARN, how="left").with_columns(
        pl.col(r.ALIASES).fill_null([])
    )
    frame = frame.sort([r.CALLS, s.KEY_ARN], descending=[True, False])
    return conform_frame(frame, r.KEY_USAGE_SCHEMA)


def _alerts_per_key(alerts: pl.DataFrame | None) -> pl.DataFrame:
    schema = pl.Schema(
        [
            (s.KEY_ARN, pl.String()),
            (r.ALERTS, pl.Int64()),
            ("suppressed_alerts", pl.Int64()),
            (r.ALERT_IDS, pl.List(pl.String())),
        ]
    )
    if alerts is None or alerts.is_empty():
        return pl.DataFrame(schema=schema)
    active = pl.col(s.SUPPRESSED_BY).is_null()
    return (
        alerts.filter(pl.col(s.KEY_ARN).is_not_null())
        .sort(s.ALERT_ID)
        .group_by(s.KEY_ARN)
        .agg(
            active.sum().cast(pl.Int64).alias(r.ALERTS),
            (~active).sum().cast(pl.Int64).alias("suppressed_alerts"),
            pl.col(s.ALERT_ID).filter(active).alias(r.ALERT_IDS),
        )
        .select(list(schema))
    )


def by_actor(
    day_events: pl.DataFrame, day: dt.date, prior_pairs: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per actor that called KMS on ``day``, with the keys it used."""
    kms = _kms(day_events)
    keyed = kms.filter(pl.col(s.KEY_ARN).is_not_null())
    base = kms.group_by(s.ACTOR).agg(
        pl.len().cast(pl.Int64).alias(r.CALLS),
        _failed().sum().cast(pl.Int64).alias(r.ERRORS),
        # The most frequent calling account: an actor is normally one account's principal.
        pl.col(s.PRINCIPAL_ACCOUNT_ID)
        .drop_nulls()
        .mode()
        .sort()
        .first()
        .alias(s.PRINCIPAL_ACCOUNT_ID),
        pl.col(s.KEY_ARN).is_null().sum().cast(pl.Int64).alias("calls_without_key"),
        pl.col(s.SOURCE_IP).drop_nulls().unique().sort().alias("source_ips"),
        pl.col(s.INVOKED_BY).drop_nulls().unique().sort().alias("invoked_by"),
    )
    keys = _counted(keyed, s.ACTOR, s.KEY_ARN, "keys")
    pairs = keyed.select(s.KEY_ARN, s.ACTOR).unique()
    fresh = (
        new_pairs(pairs, prior_pairs if prior_pairs is not None else _empty_pairs())
        .sort(s.ACTOR, s.KEY_ARN)
        .group_by(s.ACTOR, maintain_order=True)
        .agg(pl.col(s.KEY_ARN).alias("new_keys"))
    )
    frame = (
        base.join(keys, on=s.ACTOR, how="left")
        .join(fresh, on=s.ACTOR, how="left")
        .with_columns(
            pl.lit(day).alias(s.EVENT_DATE),
            pl.col("keys").fill_null([]),
            pl.col("keys").list.len().fill_null(0).cast(pl.Int64).alias("distinct_keys"),
            pl.col("new_keys").fill_null([]),
        )
        .sort([r.CALLS, s.ACTOR], descending=[True, False])
    )
    return conform_frame(frame, r.ACTOR_USAGE_SCHEMA)
