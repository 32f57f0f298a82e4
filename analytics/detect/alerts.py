"""Findings → alerts: stable IDs, one alert per (detector, entity, window), evidence, suppressions.

``alert_id`` hashes the detector, the entity (key and actor) and the start of the merge window the
finding falls in. Merge windows are aligned to the Unix epoch, so the same finding gets the same ID
on a rerun, in a backfill, or when a late event extends it — and sinks de-duplicate on it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import polars as pl

from analytics.config import Config, Suppression
from analytics.lake import schema as s

_SEVERITY_RANK = {name: rank for rank, name in enumerate(s.SEVERITIES)}


@dataclass(frozen=True)
class DetectorInfo:
    id: str
    title: str
    severity: str
    mitre_attack: tuple[str, ...]
    runbook: str


@dataclass
class Assembled:
    alerts: pl.DataFrame
    suppressed: int = 0
    expired_suppressions: list[Suppression] = field(default_factory=list)


def _with_metadata(info: DetectorInfo, findings: pl.DataFrame) -> pl.DataFrame:
    from analytics.detect.detectors.base import FINDING_COLUMNS

    missing = [
        pl.lit(None, t).alias(c) for c, t in FINDING_COLUMNS.items() if c not in findings.columns
    ]
    return findings.with_columns(missing).with_columns(
        pl.lit(info.id).alias(s.DETECTOR),
        pl.lit(info.title).alias(s.TITLE),
        pl.col(s.SEVERITY).fill_null(pl.lit(info.severity)),
        pl.lit(list(info.mitre_attack), pl.List(pl.String)).alias(s.MITRE),
        pl.lit(info.runbook).alias(s.RUNBOOK),
    )


def attach_evidence(findings: pl.DataFrame, day_events: pl.DataFrame) -> pl.DataFrame:
    """Give findings that carry no event IDs the IDs of their (key, actor) events in the window."""
    needs = findings.with_row_index("finding").filter(pl.col(s.EVIDENCE_EVENT_IDS).list.len() == 0)
    if needs.height == 0 or day_events.height == 0:
        return findings
    events = day_events.select(s.EVENT_ID, s.EVENT_TIME, s.KEY_ARN, s.ACTOR)
    matched = (
        needs.select("finding", s.KEY_ARN, s.ACTOR, s.WINDOW_START, s.WINDOW_END)
        .join(events, on=[s.KEY_ARN, s.ACTOR], how="inner", nulls_equal=True)
        .filter(pl.col(s.EVENT_TIME).is_between(s.WINDOW_START, s.WINDOW_END, closed="left"))
        .sort(s.EVENT_TIME, s.EVENT_ID)
        .group_by("finding")
        .agg(
            pl.col(s.EVENT_ID).head(s.MAX_EVIDENCE_IDS).alias("ids"),
            pl.len().cast(pl.Int64).alias("count"),
        )
    )
    return (
        findings.with_row_index("finding")
        .join(matched, on="finding", how="left")
        .with_columns(
            pl.when(pl.col(s.EVIDENCE_EVENT_IDS).list.len() == 0)
            .then(pl.col("ids").fill_null([]))
            .otherwise(pl.col(s.EVIDENCE_EVENT_IDS))
            .alias(s.EVIDENCE_EVENT_IDS),
            pl.coalesce(s.EVIDENCE_COUNT, "count").alias(s.EVIDENCE_COUNT),
        )
        .drop("finding", "ids", "count")
    )


def merge(findings: pl.DataFrame, day: dt.date, merge_window_hours: int) -> pl.DataFrame:
    """One alert per (detector, key, actor, merge window), with a stable ``alert_id``."""
    if findings.height == 0:
        return empty_alerts()
    window = f"{merge_window_hours}h"
    ranked = findings.with_columns(
        pl.col(s.WINDOW_START).dt.truncate(window).alias("bucket")
        if 24 % merge_window_hours == 0
        else pl.from_epoch(
            (pl.col(s.WINDOW_START).dt.epoch("s") // (merge_window_hours * 3600))
            * (merge_window_hours * 3600),
            time_unit="s",
        )
        .dt.replace_time_zone("UTC")
        .alias("bucket"),
        pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, return_dtype=pl.Int8).alias("rank"),
    ).sort(s.WINDOW_START, s.DETECTOR, s.KEY_ARN, s.ACTOR, s.REASON, nulls_last=True)
    group = [s.DETECTOR, s.KEY_ARN, s.ACTOR, "bucket"]
    merged = ranked.group_by(group, maintain_order=True).agg(
        pl.col(s.TITLE).first(),
        pl.col("rank").max(),
        pl.col(s.SCORE).max(),
        pl.col(s.WINDOW_START).min(),
        pl.col(s.WINDOW_END).max(),
        pl.col(s.ACCOUNT_ID).drop_nulls().first(),
        pl.col(s.AWS_REGION).drop_nulls().first(),
        pl.col(s.INVOKED_BY).drop_nulls().first(),
        pl.col(s.REASON),
        pl.len().alias("occurrences"),
        pl.col(s.BASELINE).drop_nulls().first(),
        pl.col(s.TOP_FEATURES).first(),
        pl.col(s.OBSERVED_PATTERN).drop_nulls().first(),
        pl.col(s.MITRE).first(),
        pl.col(s.RUNBOOK).first(),
        pl.col(s.EVIDENCE_EVENT_IDS)
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique(maintain_order=True)
        .head(s.MAX_EVIDENCE_IDS),
        pl.col(s.EVIDENCE_COUNT).sum(),
        pl.col(s.RELATED_KEY_ARNS)
        .list.explode(keep_nulls=False, empty_as_null=False)
        .drop_nulls()
        .unique(maintain_order=True),
    )
    identity = pl.concat_str(
        [
            pl.col(s.DETECTOR),
            pl.col(s.KEY_ARN).fill_null("-"),
            pl.col(s.ACTOR).fill_null("-"),
            pl.col("bucket").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ],
        separator="|",
    )
    return merged.with_columns(
        identity.map_batches(_sha256_hex, return_dtype=pl.String).alias(s.ALERT_ID),
        pl.lit(day).alias(s.EVENT_DATE),
        pl.col("rank")
        .replace_strict(dict(enumerate(s.SEVERITIES)), return_dtype=pl.String)
        .alias(s.SEVERITY),
        pl.col(s.REASON).map_elements(merged_reason, return_dtype=pl.String).alias(s.REASON),
        pl.lit(None, pl.String).alias(s.SUPPRESSED_BY),
        pl.lit(None, pl.String).alias(s.INCIDENT_ID),
        # Only a sweep names related keys; every other alert keeps null, not an empty list.
        pl.when(pl.col(s.RELATED_KEY_ARNS).list.len() > 0).then(pl.col(s.RELATED_KEY_ARNS)),
    ).select(s.ALERT_COLUMNS)


_NUMBERS = re.compile(r"\d[\d,.:]*")
MERGED_KINDS_SHOWN = 5


def merged_reason(reasons: pl.Series | list[str]) -> str:
    """One reason for the findings merged into an alert, never hiding a different kind of event.

    Findings whose reasons differ only in numbers (counts, times) are "more like it"; any other
    difference (another action, another target) is listed in its own words, in time order.
    """
    kinds: dict[str, list[str]] = {}
    for reason in reasons:
        kinds.setdefault(_NUMBERS.sub("#", reason), []).append(reason)
    parts = []
    for same in list(kinds.values())[:MERGED_KINDS_SHOWN]:
        more = len(same) - 1
        parts.append(same[0] if not more else f"{same[0]} (and {more} more like it in this window)")
    hidden = len(kinds) - MERGED_KINDS_SHOWN
    if hidden > 0:
        parts.append(
            f"and {hidden} other kind{'s' if hidden > 1 else ''} of finding in this window"
        )
    return parts[0] if len(parts) == 1 else "; ".join(p.rstrip(".") for p in parts) + "."


def _sha256_hex(values: pl.Series) -> pl.Series:
    import hashlib

    return pl.Series(
        [hashlib.sha256(v.encode("utf-8")).hexdigest()[:32] for v in values.to_list()],
        dtype=pl.String,
    )


def empty_alerts() -> pl.DataFrame:
    """No alerts, in the alert schema (a neutral element for readers and concatenation)."""
    frame = pl.from_arrow(s.ALERT_SCHEMA.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def apply_suppressions(alerts: pl.DataFrame, config: Config, today: dt.date) -> Assembled:
    """Mark alerts matched by a live suppression; expired suppressions are reported, not applied."""
    live = [x for x in config.suppressions if not x.expired(today)]
    expired = [x for x in config.suppressions if x.expired(today)]
    if alerts.height == 0 or not live:
        return Assembled(alerts, 0, expired)
    marks = []
    for alert in alerts.select(
        s.DETECTOR, s.ACTOR, s.KEY_ARN, s.ACCOUNT_ID, s.INVOKED_BY
    ).iter_rows(named=True):
        marks.append(next((x.id for x in live if x.matches(alert)), None))
    marked = alerts.with_columns(pl.Series(s.SUPPRESSED_BY, marks, dtype=pl.String))
    return Assembled(marked, sum(m is not None for m in marks), expired)


def assemble(
    findings: list[tuple[DetectorInfo, pl.DataFrame]],
    day: dt.date,
    day_events: pl.DataFrame,
    config: Config,
    today: dt.date,
) -> Assembled:
    """All detectors' findings for ``day`` → alerts in the alert schema, suppressions applied."""
    frames = [_with_metadata(info, f) for info, f in findings if f.height]
    if not frames:
        return apply_suppressions(empty_alerts(), config, today)
    combined = pl.concat(frames, how="diagonal_relaxed")
    combined = attach_evidence(combined, day_events)
    alerts = merge(combined, day, config.merge_window_hours)
    order = pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, return_dtype=pl.Int8)
    alerts = alerts.sort(order, s.WINDOW_START, s.ALERT_ID, descending=[True, False, False])
    return apply_suppressions(alerts, config, today)
