"""Reading what the day's reports need out of the lake, narrowly.

The reports look at three horizons: the report day (every event, for the usage summary and the
evidence of alerts), the baseline window (hourly features, for the charts), and the lake's whole
history up to the day (management events and per-key first/last use, for rotation, policies and
the inventory — a key's policy may have been set a year ago). The whole-history reads project a
few columns and filter to KMS configuration events before collecting, so they stay cheap next to
ingest; the cryptographic calls contribute only per-key aggregates.

This module does the I/O, all of it through :mod:`analytics.api` — the functions the notebooks
use — so the report and an analyst read the same events, alerts and hourly features the same
way; everything it returns is plain frames handed to pure builders.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analytics import api
from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect import scoring as detect
from analytics.detect.baselines import DEFAULT_WINDOW_DAYS
from analytics.detect.detectors._common import DATA_PLANE_EVENTS
from analytics.detect.incidents import empty_incidents
from analytics.ingest.identity import KMS_SOURCE
from analytics.ingest.quarantine import clashes_on
from analytics.lake import schema as s
from analytics.publish.reports._records import REPORT_EVENTS
from analytics.publish.reports.keyfacts import WALK_COLUMNS

_ASYMMETRIC_OPS = ("Sign", "Verify", "GetPublicKey", "DeriveSharedSecret")
_HMAC_OPS = ("GenerateMac", "VerifyMac")
_SYMMETRIC_OPS = ("GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
                  "GenerateDataKeyPairWithoutPlaintext", "ReEncrypt")  # fmt: skip


@dataclass(frozen=True)
class ReportInputs:
    """Everything the daily report builders read, already out of the lake."""

    day: dt.date
    day_events: pl.DataFrame
    management_events: pl.DataFrame
    key_activity: pl.DataFrame
    prior_pairs: pl.DataFrame
    alerts: pl.DataFrame
    hourly_features: pl.DataFrame
    lake_first_day: dt.date | None
    org_accounts: frozenset[str]
    incidents: pl.DataFrame = field(default_factory=empty_incidents)
    """The day's incidents file: each incident with every alert it holds up to the day."""
    warming_up: list[dict[str, Any]] = field(default_factory=list)
    """Detectors that could not run, or ran on partial history, for the day (as detect says)."""
    event_id_clashes: int = 0
    """Events of the day held back by ingest because their eventID was already in the lake with
    other content (each is in ``quarantine/records/`` with both objects named)."""


def key_activity(history: pl.LazyFrame) -> pl.LazyFrame:
    """Per key: first and last event, last successful cryptographic use, and what its use says
    about it (operations only asymmetric/HMAC/symmetric keys serve, ``alias/aws/…`` references,
    custom key store IDs)."""
    kms = history.filter(
        (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & pl.col(s.KEY_ARN).str.contains(":key/")
    )
    ok = pl.col(s.ERROR_CODE).is_null() | (pl.col(s.ERROR_CODE) == "")
    name = pl.col(s.EVENT_NAME)
    per_key = kms.group_by(s.KEY_ARN).agg(
        pl.col(s.EVENT_TIME).min().alias("first_seen"),
        pl.col(s.EVENT_TIME).max().alias("last_seen"),
        pl.col(s.EVENT_TIME).filter(ok & name.is_in(DATA_PLANE_EVENTS)).max().alias("last_used"),
        (ok & name.is_in(_ASYMMETRIC_OPS)).any().alias("asymmetric_ops"),
        (ok & name.is_in(_HMAC_OPS)).any().alias("hmac_ops"),
        (ok & name.is_in(_SYMMETRIC_OPS)).any().alias("symmetric_ops"),
    )
    # Literal `contains` first: the regex runs only on the few rows that can match.
    aws_alias = (
        kms.filter(pl.col(s.REQUEST_PARAMETERS).str.contains("alias/aws/", literal=True))
        .select(
            s.KEY_ARN,
            pl.col(s.REQUEST_PARAMETERS)
            .str.extract(r'"keyId"\s*:\s*"(?:arn:[^"]*:)?(alias/aws/[A-Za-z0-9/_-]+)"', 1)
            .alias("aws_alias"),
        )
        .drop_nulls("aws_alias")
        .group_by(s.KEY_ARN)
        .agg(pl.col("aws_alias").min())
    )
    store = (
        kms.filter(pl.col(s.ADDITIONAL_EVENT_DATA).str.contains("customKeyStoreId", literal=True))
        .select(
            s.KEY_ARN,
            pl.col(s.ADDITIONAL_EVENT_DATA)
            .str.json_path_match("$.customKeyStoreId")
            .alias("custom_key_store_id"),
        )
        .drop_nulls("custom_key_store_id")
        .group_by(s.KEY_ARN)
        .agg(pl.col("custom_key_store_id").min())
    )
    return (
        per_key.join(aws_alias, on=s.KEY_ARN, how="left")
        .join(store, on=s.KEY_ARN, how="left")
        .sort(s.KEY_ARN)
    )


def org_accounts_of(activity: pl.DataFrame, configured: frozenset[str]) -> frozenset[str]:
    """The configured organisation, else (as detection does) the accounts owning keys seen."""
    if configured:
        return configured
    owners = activity.get_column(s.KEY_ARN).str.split(":").list.get(4, null_on_oob=True)
    return frozenset(str(a) for a in owners.drop_nulls().unique().to_list())


def load(
    lake: LocalLake,
    day: dt.date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    org_accounts: frozenset[str] = frozenset(),
    config: Config | None = None,
    lake_name: str | None = None,
) -> ReportInputs:
    """Read the report inputs of ``day`` (the day's events must exist). ``config`` says which
    detectors run and what history they need; ``lake_name`` is the lake as the user names it,
    for the backfill commands of detectors still warming up (``LAKE`` when not given)."""
    lake_api = api.Lake(lake)
    all_days = [d for d in lake_api.event_dates() if d <= day]
    day_events = api.scan_events(lake_api, day, day).collect()
    history = api.scan_events(lake_api, end=day)
    before = api.scan_events(lake_api, end=day - dt.timedelta(days=1))
    management = (
        history.filter(
            (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & pl.col(s.EVENT_NAME).is_in(REPORT_EVENTS)
        )
        .select(WALK_COLUMNS)
        .collect()
    )
    activity = key_activity(history.select(
        s.EVENT_SOURCE, s.EVENT_NAME, s.EVENT_TIME, s.KEY_ARN, s.ERROR_CODE,
        s.REQUEST_PARAMETERS, s.ADDITIONAL_EVENT_DATA,
    )).collect()  # fmt: skip
    prior_pairs = (
        before.filter(pl.col(s.EVENT_SOURCE) == KMS_SOURCE)
        .select(s.KEY_ARN, pl.col(s.ACTOR).fill_null("(unidentified)"))
        .drop_nulls(s.KEY_ARN)
        .unique()
        .collect()
    )
    return ReportInputs(
        day=day,
        day_events=day_events,
        management_events=management,
        key_activity=activity,
        prior_pairs=prior_pairs,
        alerts=api.alerts(lake_api, day, day, include_suppressed=True),
        hourly_features=api.hourly_features(lake_api, day - dt.timedelta(days=window_days), day),
        lake_first_day=all_days[0] if all_days else None,
        org_accounts=org_accounts_of(activity, org_accounts),
        incidents=api.incidents(lake_api, day, day),
        event_id_clashes=clashes_on(lake, day),
        warming_up=detect.warm_up(lake, day, config or Config(), lake_name or "LAKE"),
    )
