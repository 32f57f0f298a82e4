"""What a rule detector is: metadata plus one pure, vectorised function over events.

A detector never reads files or calls AWS. It receives the target day's events and the compact
history tables it declared (for "last known policy", "first seen" and baseline questions), and
returns *findings*: one row per thing worth an alert, with the evidence that proves it. The
alert layer (:mod:`analytics.detect.alerts`) turns findings into alerts with stable IDs, merges them
per window and applies suppressions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analytics.lake import schema as s

# Columns a detector's findings frame may carry; unknown columns are an error.
FINDING_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    s.KEY_ARN: pl.String,
    s.RELATED_KEY_ARNS: pl.List(pl.String),
    s.ACTOR: pl.String,
    s.ACCOUNT_ID: pl.String,
    s.AWS_REGION: pl.String,
    s.INVOKED_BY: pl.String,
    s.WINDOW_START: pl.Datetime("us", "UTC"),
    s.WINDOW_END: pl.Datetime("us", "UTC"),
    s.REASON: pl.String,
    s.BASELINE: pl.String,
    s.OBSERVED_PATTERN: pl.String,
    s.EVIDENCE_EVENT_IDS: pl.List(pl.String),
    s.EVIDENCE_COUNT: pl.Int64,
    s.SCORE: pl.Float64,
    s.SEVERITY: pl.String,
    s.TOP_FEATURES: pl.List(
        pl.Struct(
            {
                "name": pl.String,
                "value": pl.Float64,
                "usual": pl.Float64,
                "contribution": pl.Float64,
                "text": pl.String,
            }
        )
    ),
}
REQUIRED_FINDING_COLUMNS = (s.WINDOW_START, s.WINDOW_END, s.REASON, s.EVIDENCE_EVENT_IDS)
WARMUP_SETTING = "warmup_days"
"""The setting by which a first-seen rule's warm-up is configured (``keytrail.toml``)."""


@dataclass(frozen=True)
class HistoryTable:
    """A compact table of the past that a rule reads instead of the raw events of the window.

    ``build`` turns a span of events (in the rule view of
    :func:`analytics.detect.detectors._common.rule_events`) into rows that answer the rule's
    question exactly, and must be *decomposable by day*: building it over several days must equal
    the rows of each day's build put together (up to duplicate rows, which readers drop). That is
    what lets :mod:`analytics.detect.history` keep one file per table per day, computed once, and
    lets a test build the same table from a frame of events. ``version`` is part of each file's
    stamp: raise it when ``build`` changes meaning, and every day is recomputed.
    """

    name: str
    description: str
    build: Callable[[pl.LazyFrame], pl.LazyFrame]
    version: int = 1

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum() or not self.name.islower():
            raise ValueError(f"history table name {self.name!r}: lower-case words and _ only")


@dataclass(frozen=True)
class DetectionContext:
    """Everything a rule may look at for one target day.

    ``events`` holds the target day's events in the narrow view of
    :func:`analytics.detect.detectors._common.rule_events` (the columns rules read; no request JSON
    on cryptographic calls); ``history`` the compact history tables (by name, see
    :class:`HistoryTable`) of the ``history_days`` before it, lazily, so a rule reads only the
    rows and columns it needs and never the raw events of the window.
    ``settings`` holds this detector's thresholds from ``keytrail.toml`` (defaults applied).
    """

    day: dt.date
    events: pl.DataFrame
    history: Mapping[str, pl.LazyFrame]
    history_days: int
    org_accounts: frozenset[str] = frozenset()
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleDetector:
    """A deterministic rule: never reused ID, severity, ATT&CK mapping, runbook, and a function."""

    id: str
    title: str
    severity: str
    mitre_attack: tuple[str, ...]
    description: str
    runbook: str
    detect: Callable[[DetectionContext], pl.DataFrame]
    defaults: dict[str, Any] = field(default_factory=dict)
    history: tuple[HistoryTable, ...] = ()
    """The compact history tables the rule reads (none for rules that see only the day)."""
    history_days_needed: int = 0
    """Days of history before the scored day the rule needs to judge fully: 0 for rules that
    read only the day's events, N for first-seen and baseline rules. Detection lists a rule
    whose lake holds fewer days under ``warming_up``, so a young lake says what it cannot see.
    A rule with a ``warmup_days`` setting declares that setting's default here."""

    def __post_init__(self) -> None:
        if self.severity not in s.SEVERITIES:
            raise ValueError(f"{self.id}: unknown severity {self.severity!r}")
        if not self.id.startswith("KMS."):
            raise ValueError(f"{self.id}: detector IDs start with 'KMS.'")
        if self.history_days_needed < 0:
            raise ValueError(f"{self.id}: history_days_needed must not be negative")
        warmup = self.defaults.get(WARMUP_SETTING)
        if warmup is not None and warmup != self.history_days_needed:
            raise ValueError(
                f"{self.id}: history_days_needed {self.history_days_needed} differs from its "
                f"{WARMUP_SETTING} default {warmup}"
            )

    def needed_days(self, settings: dict[str, Any]) -> int:
        """Days of history needed with these settings: a configured ``warmup_days`` wins."""
        return int(settings.get(WARMUP_SETTING, self.history_days_needed))


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDING_COLUMNS)


def conform_findings(detector: RuleDetector, findings: pl.DataFrame) -> pl.DataFrame:
    """Check a detector's output and give it every finding column, in order."""
    unknown = set(findings.columns) - set(FINDING_COLUMNS)
    if unknown:
        raise ValueError(f"{detector.id} returned unknown columns {sorted(unknown)}")
    missing = [c for c in REQUIRED_FINDING_COLUMNS if c not in findings.columns]
    if missing and findings.height:
        raise ValueError(f"{detector.id} findings lack {missing}")
    for column, allowed in ((s.SEVERITY, s.SEVERITIES), (s.OBSERVED_PATTERN, s.OBSERVED_PATTERNS)):
        if column in findings.columns:
            bad = set(findings.get_column(column).drop_nulls().unique().to_list()) - set(allowed)
            if bad:
                raise ValueError(f"{detector.id} returned unknown {column} values {sorted(bad)}")
    filled = findings.with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in FINDING_COLUMNS.items()
        if name not in findings.columns
    )
    return filled.select(
        pl.col(name).cast(dtype) for name, dtype in FINDING_COLUMNS.items()
    ).with_columns(
        pl.col(s.EVIDENCE_COUNT).fill_null(pl.col(s.EVIDENCE_EVENT_IDS).list.len().cast(pl.Int64)),
        pl.col(s.EVIDENCE_EVENT_IDS).list.head(s.MAX_EVIDENCE_IDS),
    )
