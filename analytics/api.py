"""The analyst's view of a keytrail lake: a few functions that answer the usual questions.

The lake is plain Hive-partitioned Parquet, so anyone can read it with DuckDB or Polars. This
module exists so that the questions asked again and again — who used this key, how does today
compare with its usual band, why did this alert fire, what would a threshold change have fired —
are answered the same way in a notebook, in the HTML report and in a colleague's script, with the
same partition pruning, the same baselines and the same definitions the detectors use. It is the
public surface for notebooks: everything here is stable and documented, everything else in
:mod:`analytics` may change.

Conventions:

* Time arguments (``start``, ``end``, ``day``) take a :class:`datetime.date`, a time-zone aware
  :class:`datetime.datetime`, or an ISO string of either (``"2026-11-14"``,
  ``"2026-11-14T13:00Z"``). Dates are whole UTC days and ``end`` dates are inclusive; datetimes
  are instants and ``end`` is exclusive. The lake is UTC throughout, so a time without a zone is
  refused rather than guessed.
* ``key_arn`` and ``actor`` take one value or several. A key may be given as its full ARN or as
  the part after ``:`` (``key/1234…``, ``alias/name``) or after ``key/`` (a bare key ID).
* Every function returns Polars data frames whose column names are those of
  :mod:`analytics.lake.schema` and ``docs/lake-schema.md``.

Reading never changes what a user sees in the lake. The only files a read may write are the
hourly feature files, a cache of the events that ``keytrail detect`` and ``keytrail report``
keep up to date the same way; on a read-only copy they are computed in memory instead.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from analytics import config as cfg
from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect import alerts as alert_rows
from analytics.detect import bands as band_data
from analytics.detect import baselines as bl
from analytics.detect import features, model
from analytics.detect import incidents as grouping
from analytics.detect import scoring as detect
from analytics.detect.baselines import Baselines
from analytics.lake import schema as s

__all__ = [
    "AlertNotFound",
    "Baselines",
    "Config",
    "Explanation",
    "Lake",
    "LakeError",
    "ModelScores",
    "alert",
    "alerts",
    "baseline_band",
    "baselines",
    "dry_run",
    "events",
    "explain",
    "hourly_features",
    "hourly_usage",
    "incident_records",
    "incidents",
    "load_config",
    "model_scores",
    "open_lake",
    "scan_events",
    "suppress",
    "suppression_candidates",
    "suppression_toml",
    "usage_summary",
]

TimeLike = dt.date | dt.datetime | str
"""A UTC day, an aware instant, or an ISO string of either."""

Values = str | Iterable[str]
"""One value or several (any of them matches)."""

USAGE_COUNTS: Final[tuple[str, ...]] = (
    "calls", "decrypt_calls", "encrypt_calls", "generate_data_key_calls", "re_encrypt_calls",
    "sign_verify_mac_calls", "management_calls", "read_calls", "errors", "access_denied_errors",
    "invalid_ciphertext_errors", "invalid_state_errors", "throttling_errors",
    "cross_account_calls", "via_service_calls",
)  # fmt: skip
"""The additive counts of the hourly feature rows that usage functions sum."""

NOVELTY_KINDS: Final[dict[str, str]] = {
    "key_actor": "this key for this actor",
    "actor_ip": "source IP for this actor",
    "actor_region": "region for this actor",
    "actor_user_agent": "user agent family for this actor",
    "key_caller_account": "caller account on this key",
}
"""The first-seen relations :func:`explain` checks, with the words used to show them."""

_SEVERITY_RANK = {name: rank for rank, name in enumerate(s.SEVERITIES)}
_SELECTION = "\x00selection"  # a band label no key ARN can equal


class LakeError(ValueError):
    """The lake cannot answer: it does not exist, is not a keytrail lake, or lacks the day."""


class AlertNotFound(LookupError):
    """No alert in the lake has this ``alert_id`` (or a short prefix matches several)."""


# --- the lake ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lake:
    """A keytrail lake opened for reading; get one from :func:`open_lake`.

    A thin, immutable handle: it holds no data and no open files, so it can be kept in a
    notebook for hours while the nightly run adds days to the lake underneath it. Code that
    already holds a checked :class:`LocalLake` (the report) wraps it as ``Lake(local)``.
    """

    local: LocalLake

    @property
    def root(self) -> Path:
        """The lake's folder (for an S3 lake: a folder of this machine that stands for it and
        that nothing creates; its files are read in place)."""
        return self.local.root

    @property
    def name(self) -> str:
        """The lake as it was opened: a folder, or ``s3://bucket/prefix``."""
        return self.local.name

    def event_dates(self) -> list[dt.date]:
        """The UTC days that have events, oldest first."""
        return self.local.event_dates()

    def alert_dates(self) -> list[dt.date]:
        """The days that have been scored, with or without alerts."""
        return detect.scored_days(self.local)

    @property
    def first_day(self) -> dt.date:
        """The oldest day with events."""
        return self._dates()[0]

    @property
    def last_day(self) -> dt.date:
        """The newest day with events: the day a nightly run last ingested."""
        return self._dates()[-1]

    def last_days(self, n: int) -> list[dt.date]:
        """The ``n`` newest days with events, oldest first (what "the last N days" means)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        return self._dates()[-n:]

    def _dates(self) -> list[dt.date]:
        dates = self.event_dates()
        if not dates:
            raise LakeError(f"{self.name} holds no events yet; run keytrail ingest first")
        return dates


def open_lake(path: str | Path, *, endpoint_url: str | None = None) -> Lake:
    """Open the lake at ``path``: a folder written by ``keytrail ingest`` or ``keytrail demo``,
    or an ``s3://bucket/prefix`` lake.

    An S3 lake is read where it is: opening it lists the bucket prefix, each query then
    fetches only the partitions and columns it needs. It takes no lock and never writes to the
    bucket; a query sees the lake as it is when it runs.

    Fails early with a message that says what to run, rather than letting every later query
    return an empty frame that looks like a quiet day.
    """
    text = str(path)
    if text.startswith("s3://"):
        from analytics.adapters.s3_lake import in_place_lake
        from analytics.adapters.sources import SourceError

        try:
            remote = in_place_lake(text, endpoint_url=endpoint_url, read_only=True)
            found = remote.store.folders("")
        except (SourceError, OSError) as exc:  # LakeSyncError, EndpointError
            raise LakeError(str(exc)) from None
        if not {"events", "_state"} & set(found):
            raise LakeError(f"{text} is not a keytrail lake (it has neither events/ nor _state/)")
        return Lake(remote)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise LakeError(
            f"{root}: no such folder; build the demo lake with `make demo`, or a real one with "
            f"`keytrail ingest s3://bucket/prefix --lake {root}`"
        )
    local = LocalLake(root)
    if not (local.events_dir.is_dir() or local.state_file.exists()):
        raise LakeError(f"{root} is not a keytrail lake (it has neither events/ nor _state/)")
    return Lake(local)


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Detection settings from a ``keytrail.toml`` path, a dict shaped like one, or defaults.

    ``overrides`` (shaped like the file too) are merged over ``source`` table by table, which is
    how a what-if experiment is written: ``load_config("keytrail.toml", overrides={"model":
    {"surge_factor": 3.0}})``. The result goes through the same validation as the file, so an
    experiment is refused on exactly the typos the nightly run would refuse.
    """
    if source is None:
        document: dict[str, Any] = {}
        where = "default settings"
    elif isinstance(source, Mapping):
        document = dict(source)
        where = "settings given to load_config"
    else:
        path = Path(source)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise cfg.ConfigError(f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise cfg.ConfigError(f"{path}: not valid TOML ({exc})") from None
        where = str(path)
    if overrides:
        document = _merged(document, overrides)
        where = f"{where} with overrides"
    return cfg.parse(document, where)


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``, tables merged key by key, anything else replaced."""
    result = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


# --- time -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """A half-open UTC interval and the days it touches."""

    start: dt.datetime
    end: dt.datetime

    @property
    def first_day(self) -> dt.date:
        return self.start.date()

    @property
    def last_day(self) -> dt.date:
        return (self.end - dt.timedelta(microseconds=1)).date()

    def days(self) -> list[dt.date]:
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + dt.timedelta(days=i) for i in range(max(count, 0))]


def _parse(value: TimeLike) -> dt.date | dt.datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            return (
                dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
            )
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date or time") from None
    return value


def _instant(value: TimeLike, *, is_end: bool) -> dt.datetime:
    parsed = _parse(value)
    if isinstance(parsed, dt.datetime):
        if parsed.tzinfo is None:
            raise ValueError(
                f"{value!r} has no time zone; the lake is in UTC: add +00:00 or Z, or pass a date"
            )
        return parsed.astimezone(dt.UTC)
    day = parsed + dt.timedelta(days=1) if is_end else parsed
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _day(value: TimeLike) -> dt.date:
    parsed = _parse(value)
    if isinstance(parsed, dt.datetime):
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; the lake is in UTC")
        return parsed.astimezone(dt.UTC).date()
    return parsed


def _span(lake: Lake, start: TimeLike | None, end: TimeLike | None) -> _Span:
    """``start``..``end`` with the lake's own first and last day standing in for ``None``."""
    dates = lake.event_dates()
    if start is None:
        start = dates[0] if dates else dt.datetime.now(dt.UTC).date()
    if end is None:
        end = dates[-1] if dates else dt.datetime.now(dt.UTC).date()
    span = _Span(_instant(start, is_end=False), _instant(end, is_end=True))
    if span.end <= span.start:
        raise ValueError(f"start {start!r} is not before end {end!r}")
    return span


# --- selections -------------------------------------------------------------------------------


def _as_list(values: Values | None) -> list[str] | None:
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)


def _key_match(values: Values | None) -> pl.Expr | None:
    """Full ARNs match exactly; shorter forms match the end of the ARN (see the module doc)."""
    wanted = _as_list(values)
    if wanted is None:
        return None
    exact = [v for v in wanted if v.startswith("arn:")]
    condition = pl.col(s.KEY_ARN).is_in(exact) if exact else pl.lit(False)
    for value in (v for v in wanted if not v.startswith("arn:")):
        suffix = f":{value}" if "/" in value else f":key/{value}"
        condition = condition | pl.col(s.KEY_ARN).str.ends_with(suffix)
    return condition


def _selection(key_arn: Values | None, actor: Values | None) -> pl.Expr:
    condition = pl.lit(True)
    key = _key_match(key_arn)
    if key is not None:
        condition = condition & key
    actors = _as_list(actor)
    if actors is not None:
        condition = condition & pl.col(s.ACTOR).is_in(actors)
    return condition


# --- events -----------------------------------------------------------------------------------


def _empty_events() -> pl.DataFrame:
    frame = pl.from_arrow(s.EVENT_SCHEMA.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _event_scan(lake: Lake, days: Iterable[dt.date]) -> pl.LazyFrame:
    """The event files of ``days`` only: partition pruning by listing, not by filtering."""
    files = [file for day in days for file in lake.local.event_files(day)]
    if not files:
        return _empty_events().lazy()
    return lake.local.store.scan_days(files, s.EVENT_COLUMNS, s.EVENT_SCHEMA)


def _day_range(start: TimeLike | None, end: TimeLike | None) -> tuple[dt.date, dt.date]:
    """Whole UTC days ``start``..``end``, both inclusive; ``None`` leaves that end open."""
    first = _day(start) if start is not None else dt.date.min
    last = _day(end) if end is not None else dt.date.max
    return first, last


def scan_events(
    lake: Lake, start: TimeLike | None = None, end: TimeLike | None = None
) -> pl.LazyFrame:
    """The stored events of the days ``start``..``end``, lazily: not filtered, not sorted.

    For questions over long ranges that end in an aggregate or a narrow filter (each key's first
    and last use, every key policy ever set), where :func:`events` would collect and sort every
    row first: select and filter on this scan, and Polars pushes both into the Parquet reader.
    Only the days' partitions are opened. ``start``/``end`` are whole UTC days, both inclusive
    (an instant stands for its day); ``None`` leaves that end open. Rows keep their stored
    order, so a day read whole costs one copy and no sort (the daily report reads its day so).
    """
    first, last = _day_range(start, end)
    return _event_scan(lake, [d for d in lake.event_dates() if first <= d <= last])


def events(
    lake: Lake,
    *,
    key_arn: Values | None = None,
    actor: Values | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    columns: Sequence[str] | None = None,
    event_ids: Iterable[str] | None = None,
) -> pl.DataFrame:
    """The events of a key and/or an actor in a time range, oldest first.

    Only the date partitions the range touches are opened, and the filters and the column list
    are pushed into the Parquet scan, so asking for one key's hour costs a hour's worth of reads
    even in a lake of years. ``columns`` defaults to every event column; ask for fewer when the
    range is wide.
    """
    wanted = list(columns) if columns is not None else list(s.EVENT_COLUMNS)
    unknown = [c for c in wanted if c not in s.EVENT_COLUMNS]
    if unknown:
        raise ValueError(f"unknown event column(s) {unknown}; see docs/lake-schema.md")
    span = _span(lake, start, end)
    present = set(lake.event_dates())
    scan = _event_scan(lake, [d for d in span.days() if d in present])
    condition = (
        (pl.col(s.EVENT_TIME) >= span.start)
        & (pl.col(s.EVENT_TIME) < span.end)
        & _selection(key_arn, actor)
    )
    if event_ids is not None:
        condition = condition & pl.col(s.EVENT_ID).is_in(list(event_ids))
    return scan.filter(condition).sort(s.EVENT_TIME, s.EVENT_ID).select(wanted).collect()


# --- hourly usage -----------------------------------------------------------------------------


def _features(lake: Lake, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Hourly feature rows of ``first``..``last``, brought up to date with the events first."""
    days = [d for d in lake.event_dates() if first <= d <= last]
    try:
        features.ensure_days(lake.local, days)
    except OSError:  # a read-only copy of a lake: compute the days in memory instead
        frames = [
            features.compute_day(
                features.read_day_events(lake.local, day, features.FEATURE_INPUT_COLUMNS), day
            )
            for day in days
        ]
        if frames:
            return pl.concat(frames, how="vertical_relaxed")
    return features.scan(lake.local, first, last).collect()


def hourly_features(lake: Lake, start: TimeLike, end: TimeLike) -> pl.DataFrame:
    """The hourly feature rows of the days ``start``..``end`` (both inclusive), as stored.

    One row per (hour, key, actor) with the counts, distinct counts and distinct values of
    ``sql/features_hourly.sql``: what the detectors, :func:`hourly_usage` and
    :func:`baseline_band` are computed from. For questions those do not answer, and for the
    daily report, whose charts draw the bands of several keys from one read of the window.
    Feature files are brought up to date with the events first, as for every usage function.
    """
    first, last = _day_range(start, end)
    if first > last:
        raise ValueError(f"start {first} is after end {last}")
    return _features(lake, first, last)


def _hours(span: _Span) -> pl.DataFrame:
    first = span.start.replace(minute=0, second=0, microsecond=0)
    last = (span.end - dt.timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    return pl.DataFrame(
        {"hour_start": pl.datetime_range(first, last, "1h", time_zone="UTC", eager=True)}
    ).with_columns(pl.col("hour_start").dt.cast_time_unit("us"))


def _check_by(by: Sequence[str]) -> list[str]:
    groups = list(by)
    bad = [g for g in groups if g not in (s.KEY_ARN, s.ACTOR)]
    if bad:
        raise ValueError(f"by may hold {s.KEY_ARN!r} and {s.ACTOR!r}, not {bad}")
    return groups


def hourly_usage(
    lake: Lake,
    *,
    key_arn: Values | None = None,
    actor: Values | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """KMS calls per hour of a key and/or an actor, with every silent hour present as zero.

    Read from the hourly feature files the detectors use, so the numbers are the ones the
    baselines and the model saw. Zero-filled because a chart or a median over hours with gaps
    would hide exactly the quiet hours that make a burst stand out. ``by`` keeps ``key_arn``
    and/or ``actor`` as columns (one series per value) instead of summing over them.

    Columns: ``hour_start``, ``event_date``, ``hour_of_day``, the ``by`` columns, then the
    counts of :data:`USAGE_COUNTS`.
    """
    groups = _check_by(by)
    span = _span(lake, start, end)
    rows = _features(lake, span.first_day, span.last_day).filter(
        (pl.col("hour_start") >= span.start.replace(minute=0, second=0, microsecond=0))
        & (pl.col("hour_start") < span.end)
        & _selection(key_arn, actor)
    )
    sums = rows.group_by(["hour_start", *groups]).agg(pl.col(c).sum() for c in USAGE_COUNTS)
    grid = _hours(span)
    if groups:
        grid = grid.join(sums.select(groups).unique(), how="cross")
    return (
        grid.join(sums, on=["hour_start", *groups], how="left", nulls_equal=True)
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in USAGE_COUNTS)
        .with_columns(
            pl.col("hour_start").dt.date().alias(s.EVENT_DATE),
            pl.col("hour_start").dt.hour().cast(pl.Int32).alias("hour_of_day"),
        )
        .select("hour_start", s.EVENT_DATE, "hour_of_day", *groups, *USAGE_COUNTS)
        .sort(["hour_start", *groups], nulls_last=True)
    )


def usage_summary(
    lake: Lake,
    *,
    by: str = s.KEY_ARN,
    key_arn: Values | None = None,
    actor: Values | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> pl.DataFrame:
    """One row per key (``by="key_arn"``) or per actor (``by="actor"``), busiest first.

    The quick answer to "which keys matter here" and "who uses this key": calls, errors and
    their ratio, active hours, how many distinct actors (or keys) were involved, and the first
    and last active hour. Rows whose ``by`` value is unknown (calls that name no key) are kept
    with a null ``by`` so the totals add up.

    Columns: the ``by`` column, ``calls``, ``errors``, ``decrypt_calls``,
    ``cross_account_calls``, ``active_hours``, ``distinct_actors`` (per key) or
    ``distinct_keys`` (per actor), ``first_hour``, ``last_hour``, ``error_ratio``.
    """
    (group,) = _check_by([by])
    other = s.ACTOR if group == s.KEY_ARN else s.KEY_ARN
    distinct = "distinct_actors" if group == s.KEY_ARN else "distinct_keys"
    span = _span(lake, start, end)
    rows = _features(lake, span.first_day, span.last_day).filter(
        (pl.col("hour_start") >= span.start.replace(minute=0, second=0, microsecond=0))
        & (pl.col("hour_start") < span.end)
        & _selection(key_arn, actor)
    )
    return (
        rows.group_by(group)
        .agg(
            pl.col("calls").sum(),
            pl.col("errors").sum(),
            pl.col("decrypt_calls").sum(),
            pl.col("cross_account_calls").sum(),
            pl.col("hour_start").n_unique().alias("active_hours"),
            pl.col(other).drop_nulls().n_unique().alias(distinct),
            pl.col("hour_start").min().alias("first_hour"),
            pl.col("hour_start").max().alias("last_hour"),
        )
        .with_columns(
            (pl.col("errors") / pl.col("calls")).fill_nan(None).alias("error_ratio"),
            pl.col("calls", "errors", "decrypt_calls", "cross_account_calls").cast(pl.Int64),
            pl.col("active_hours", distinct).cast(pl.Int64),
        )
        .sort(["calls", group], descending=[True, False], nulls_last=True)
    )


def baseline_band(
    lake: Lake,
    *,
    key_arn: Values | None = None,
    actor: Values | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    window_days: int = bl.DEFAULT_WINDOW_DAYS,
) -> pl.DataFrame:
    """Each hour's calls beside the usual range for that hour of day, day by day.

    The band of every day comes from the ``window_days`` before it (10th–90th percentile and
    median of the calls in that hour, silent days counted as zero, weekdays against weekdays
    once there are enough) — built by :mod:`analytics.detect.bands`, the code that draws the
    HTML report's charts, so a notebook and the report never disagree about what "usual" is.
    ``start``/``end`` are days; they default to the lake's last day.

    Columns: ``hour_start``, ``event_date``, ``hour_of_day``, ``calls``, ``band_low``,
    ``band_median``, ``band_high`` (null before any history), ``history_days``.
    """
    last = _day(end) if end is not None else lake.last_day
    first = _day(start) if start is not None else last
    if first > last:
        raise ValueError(f"start {first} is after end {last}")
    rows = _features(lake, first - dt.timedelta(days=window_days), last)
    labelled = rows.with_columns(
        pl.when(_selection(key_arn, actor))
        .then(pl.lit(_SELECTION))
        .otherwise(pl.col(s.KEY_ARN))
        .alias(s.KEY_ARN)
    )
    frames = []
    for offset in range((last - first).days + 1):
        day = first + dt.timedelta(days=offset)
        band = band_data.build(labelled, day, [_SELECTION], window_days)
        frames.append(band.with_columns(pl.lit(day).alias(s.EVENT_DATE)))
    combined = pl.concat(frames)
    hour_start = pl.col(s.EVENT_DATE).cast(pl.Datetime("us", "UTC")) + pl.duration(
        hours=pl.col("hour_of_day")
    )
    return combined.select(
        hour_start.alias("hour_start"),
        s.EVENT_DATE,
        "hour_of_day",
        "calls",
        "band_low",
        "band_median",
        "band_high",
        "history_days",
    ).sort("hour_start")


def baselines(lake: Lake, day: TimeLike, *, config: Config | None = None) -> Baselines:
    """The baselines ``keytrail detect`` measures ``day`` against (the window before it).

    Useful to see an entity the way the model does: its seasonal medians (``pair_seasonal``),
    its profile (``pair_profile``, ``actor_profile``, ``key_profile``) and what it had already
    been seen with (``first_seen``). See :class:`analytics.detect.baselines.Baselines`.
    """
    settings = config or Config()
    target = _day(day)
    first, _ = bl.window(target, settings.baseline_window_days)
    rows = _features(lake, first, target)
    return bl.build(rows.lazy(), target, settings.baseline_window_days)


# --- alerts -----------------------------------------------------------------------------------


def _sort_alerts(frame: pl.DataFrame) -> pl.DataFrame:
    rank = pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, default=-1, return_dtype=pl.Int8)
    return frame.sort(
        [pl.col(s.EVENT_DATE), rank, pl.col(s.WINDOW_START), pl.col(s.ALERT_ID)],
        descending=[False, True, False, False],
    )


def alerts(
    lake: Lake,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    include_suppressed: bool = False,
    detector: Values | None = None,
    key_arn: Values | None = None,
    actor: Values | None = None,
) -> pl.DataFrame:
    """The alerts of the scored days ``start``..``end`` (default: every scored day).

    Suppressed alerts are left out unless ``include_suppressed`` — the same default as the
    report and the exports — but they are always in the lake with ``suppressed_by`` set, so a
    suppression never hides anything from someone who asks. Sorted by day, then most severe
    first. Columns: the alert schema (``docs/lake-schema.md``).
    """
    first, last = _day_range(start, end)
    days = [d for d in lake.alert_dates() if first <= d <= last]
    frames = [detect.read_alerts(lake.local, d) for d in days]
    if not frames:
        return alert_rows.empty_alerts()
    frame = pl.concat(frames, how="vertical_relaxed")
    condition = _selection(key_arn, actor)
    detectors = _as_list(detector)
    if detectors is not None:
        condition = condition & pl.col(s.DETECTOR).is_in(detectors)
    if not include_suppressed:
        condition = condition & pl.col(s.SUPPRESSED_BY).is_null()
    return _sort_alerts(frame.filter(condition))


def incidents(
    lake: Lake,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    severity: Values | None = None,
    key_arn: Values | None = None,
    actor: Values | None = None,
) -> pl.DataFrame:
    """The incidents of the scored days ``start``..``end`` (default: every scored day).

    An incident is one attack story: the alerts an analyst triages together (see
    ``docs/lake-schema.md``). One that goes on past midnight is written again on each of its
    days with every alert it holds so far, so each ``incident_id`` appears once here, as its
    row of the latest day in the range. ``key_arn`` and ``actor`` select incidents that name
    any of them; ``severity`` takes one level or several. Most severe first, then oldest.
    """
    first, last = _day_range(start, end)
    days = [d for d in lake.alert_dates() if first <= d <= last]
    frames = [detect.read_incidents(lake.local, d) for d in days]
    frames = [f for f in frames if f.height]
    if not frames:
        return grouping.empty_incidents()
    frame = (
        pl.concat(frames, how="vertical_relaxed")
        .sort(s.EVENT_DATE)
        .unique(s.INCIDENT_ID, keep="last", maintain_order=True)
    )
    condition = pl.lit(True)
    severities = _as_list(severity)
    if severities is not None:
        condition = condition & pl.col(s.SEVERITY).is_in(severities)
    actors = _as_list(actor)
    if actors is not None:
        condition = condition & pl.col(s.ACTORS).list.eval(pl.element().is_in(actors)).list.any()
    key = _key_match(key_arn)
    if key is not None:  # the same matching rules as for alerts, on each key the incident names
        keys = frame.select(s.INCIDENT_ID, pl.col(s.KEY_ARNS).alias(s.KEY_ARN)).explode(s.KEY_ARN)
        named = keys.filter(key).get_column(s.INCIDENT_ID).unique().to_list()
        condition = condition & pl.col(s.INCIDENT_ID).is_in(named)
    rank = pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, default=-1, return_dtype=pl.Int8)
    return frame.filter(condition).sort(
        [rank, s.FIRST_SEEN, s.INCIDENT_ID], descending=[True, False, False]
    )


def incident_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Incidents as JSON-ready dicts (times and dates in ISO 8601), in the frame's order.

    The one shape of an incident in machine-readable output: ``keytrail detect --json``, the
    report's ``summary.json``. Keys are the incident schema's columns.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()
        if isinstance(value, list):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {name: plain(item) for name, item in value.items()}
        return value

    columns = [c for c in s.INCIDENT_COLUMNS if c in frame.columns]
    return [
        {name: plain(value) for name, value in row.items()}
        for row in frame.select(columns).iter_rows(named=True)
    ]


def alert(lake: Lake, alert_id: str) -> dict[str, Any]:
    """One alert as a dict of the alert schema's columns.

    ``alert_id`` may be shortened to a unique prefix of at least 8 characters, as people copy
    them from tickets and chat. Suppressed alerts are found too.
    """
    every = alerts(lake, include_suppressed=True)
    found = every.filter(pl.col(s.ALERT_ID) == alert_id)
    if found.height == 0 and len(alert_id) >= 8:
        found = every.filter(pl.col(s.ALERT_ID).str.starts_with(alert_id))
    if found.height == 0:
        raise AlertNotFound(f"no alert {alert_id!r} in {lake.name}")
    ids = found.get_column(s.ALERT_ID).unique().to_list()
    if len(ids) > 1:
        raise AlertNotFound(f"{alert_id!r} matches {len(ids)} alerts; give more characters")
    # The same ID on two days means one finding was rescored in a backfill: the latest wins.
    return found.sort(s.EVENT_DATE).row(-1, named=True)


@dataclass(frozen=True)
class Explanation:
    """Everything an analyst needs to decide about one alert, gathered from the lake.

    ``alert``: the alert (alert schema columns). ``evidence``: its evidence events (event
    schema), and ``evidence_missing`` the evidence IDs the lake no longer holds. ``timeline``:
    hourly calls of the alert's key by its actor around the alert, with the baseline band.
    ``actor_timeline``: the actor's hourly calls over all keys in the same hours.
    ``new_vs_baseline``: each key, IP, region, user agent family and caller account seen in the
    alert window, and whether the baseline window had seen it (``new``). ``baseline``: the
    (key, actor) profile of the baseline window, or None when the pair is new. ``related``:
    other alerts on the same key or by the same actor close in time.
    """

    alert: dict[str, Any]
    evidence: pl.DataFrame
    evidence_missing: tuple[str, ...]
    timeline: pl.DataFrame
    actor_timeline: pl.DataFrame
    new_vs_baseline: pl.DataFrame
    baseline: dict[str, Any] | None
    history_days: int
    related: pl.DataFrame

    @property
    def new(self) -> pl.DataFrame:
        """Only what the baseline window had never seen."""
        return self.new_vs_baseline.filter(pl.col("new"))

    def summary(self) -> str:
        """A few lines of Markdown for a ticket or a notebook cell."""
        a = self.alert
        lines = [
            f"**{a[s.SEVERITY].upper()} {a[s.DETECTOR]}** — {a[s.TITLE]}",
            "",
            f"- when: {a[s.WINDOW_START]:%Y-%m-%d %H:%M}–{a[s.WINDOW_END]:%H:%M} UTC",
            f"- key: `{a[s.KEY_ARN] or '—'}`",
            f"- actor: `{a[s.ACTOR] or '—'}`",
            f"- reason: {a[s.REASON]}",
            f"- evidence: {self.evidence.height} event(s) in the lake of {a[s.EVIDENCE_COUNT]}",
        ]
        if a[s.BASELINE]:
            lines.append(f"- baseline: {a[s.BASELINE]}")
        for row in self.new.iter_rows(named=True):
            lines.append(f"- new {row['what']}: `{row['value']}`")
        if self.related.height:
            lines.append(f"- related alerts: {self.related.height}")
        if a[s.SUPPRESSED_BY]:
            lines.append(f"- suppressed by: {a[s.SUPPRESSED_BY]}")
        return "\n".join(lines)


def _evidence(lake: Lake, found: dict[str, Any]) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Evidence events, looked for on the alert's day first and then in the lake before it."""
    ids = list(dict.fromkeys(found[s.EVIDENCE_EVENT_IDS] or []))
    if not ids:
        return _empty_events(), ()
    day = found[s.EVENT_DATE]
    frame = _event_scan(lake, [day]).filter(pl.col(s.EVENT_ID).is_in(ids)).collect()
    if frame.height < len(ids):  # rules may cite older events (the deletion that was scheduled)
        earlier = [d for d in lake.event_dates() if d < day]
        frame = pl.concat(
            [frame, _event_scan(lake, earlier).filter(pl.col(s.EVENT_ID).is_in(ids)).collect()]
        )
    frame = frame.unique(s.EVENT_ID, keep="first").sort(s.EVENT_TIME, s.EVENT_ID)
    present = set(frame.get_column(s.EVENT_ID).to_list())
    return frame, tuple(i for i in ids if i not in present)


def _novelty(rows: pl.DataFrame, history: Baselines) -> pl.DataFrame:
    """What the alert window's feature rows carried, against the baseline's first-seen tables."""
    schema = pl.Schema({
        "relation": pl.String, "what": pl.String, "entity": pl.String, "value": pl.String,
        "new": pl.Boolean, "first_seen": pl.Date, "last_seen": pl.Date, "calls": pl.Int64,
    })  # fmt: skip
    frames = []
    pairs = (
        rows.filter(pl.col(s.KEY_ARN).is_not_null())
        .group_by(s.KEY_ARN, s.ACTOR)
        .agg(pl.col("calls").sum())
    )
    seen = history.first_seen["key_actor"]
    frames.append(
        pairs.join(seen, on=[s.KEY_ARN, s.ACTOR], how="left").select(
            pl.lit("key_actor").alias("relation"),
            pl.col(s.ACTOR).alias("entity"),
            pl.col(s.KEY_ARN).alias("value"),
            "first_seen",
            "last_seen",
            "calls",
        )
    )
    for name, (entity, values) in bl.FIRST_SEEN_PAIRS.items():
        exploded = (
            rows.select(entity, "calls", pl.col(values).alias("value"))
            .explode("value")
            .drop_nulls(["value", entity])
            .group_by(entity, "value")
            .agg(pl.col("calls").sum())
        )
        frames.append(
            exploded.join(history.first_seen[name], on=[entity, "value"], how="left").select(
                pl.lit(name).alias("relation"),
                pl.col(entity).alias("entity"),
                "value",
                "first_seen",
                "last_seen",
                "calls",
            )
        )
    combined = pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.col("relation").replace_strict(NOVELTY_KINDS, return_dtype=pl.String).alias("what"),
        pl.col("first_seen").is_null().alias("new"),
        pl.col("calls").cast(pl.Int64),
    )
    return (
        combined.select(schema.names())
        .cast(schema)
        .sort(["new", "relation", "calls", "value"], descending=[True, False, True, False])
    )


def _related(lake: Lake, found: dict[str, Any], days: int) -> pl.DataFrame:
    day = found[s.EVENT_DATE]
    nearby = alerts(
        lake,
        day - dt.timedelta(days=days),
        day + dt.timedelta(days=days),
        include_suppressed=True,
    ).filter(pl.col(s.ALERT_ID) != found[s.ALERT_ID])
    same_key = (
        pl.col(s.KEY_ARN) == found[s.KEY_ARN] if found[s.KEY_ARN] is not None else pl.lit(False)
    )
    same_actor = pl.col(s.ACTOR) == found[s.ACTOR] if found[s.ACTOR] is not None else pl.lit(False)
    relation = (
        pl.when(same_key.fill_null(False) & same_actor.fill_null(False))
        .then(pl.lit("same key and actor"))
        .when(same_key.fill_null(False))
        .then(pl.lit("same key"))
        .when(same_actor.fill_null(False))
        .then(pl.lit("same actor"))
        .otherwise(None)
    )
    return (
        nearby.with_columns(relation.alias("relation"))
        .filter(pl.col("relation").is_not_null())
        .select("relation", *s.ALERT_COLUMNS)
    )


def explain(
    lake: Lake,
    alert_id: str,
    *,
    context_days: int = 3,
    related_days: int = 7,
    config: Config | None = None,
) -> Explanation:
    """Why an alert fired, with the data to check it: evidence, timeline, novelty, relatives.

    ``context_days`` days before the alert's day (and the day itself) make the timeline;
    alerts up to ``related_days`` either side are searched for relatives. The baseline is
    rebuilt for the alert's day exactly as detection built it (``config``'s window).
    """
    found = alert(lake, alert_id)
    settings = config or Config()
    day: dt.date = found[s.EVENT_DATE]
    evidence, missing = _evidence(lake, found)
    key, actor = found[s.KEY_ARN], found[s.ACTOR]
    first = day - dt.timedelta(days=context_days)
    timeline = _empty_timeline()
    actor_timeline = _empty_timeline()
    if key is not None or actor is not None:
        usage = hourly_usage(lake, key_arn=key, actor=actor, start=first, end=day)
        band = baseline_band(
            lake, key_arn=key, actor=actor, start=first, end=day,
            window_days=settings.baseline_window_days,
        )  # fmt: skip
        timeline = usage.join(
            band.select("hour_start", "band_low", "band_median", "band_high"),
            on="hour_start",
            how="left",
        )
    if actor is not None:
        actor_timeline = hourly_usage(lake, actor=actor, start=first, end=day)
    history = baselines(lake, day, config=settings)
    window_rows = _features(lake, day, found[s.WINDOW_END].date()).filter(
        (pl.col("hour_start") >= found[s.WINDOW_START].replace(minute=0, second=0))
        & (pl.col("hour_start") < found[s.WINDOW_END])
        & (pl.col(s.ACTOR) == actor if actor is not None else pl.lit(False))
        & (pl.col(s.KEY_ARN) == key if key is not None else pl.lit(True))
    )
    profile = None
    if key is not None and actor is not None:
        match = history.pair_profile.filter((pl.col(s.KEY_ARN) == key) & (pl.col(s.ACTOR) == actor))
        profile = match.row(0, named=True) if match.height else None
    return Explanation(
        alert=found,
        evidence=evidence,
        evidence_missing=missing,
        timeline=timeline,
        actor_timeline=actor_timeline,
        new_vs_baseline=_novelty(window_rows, history),
        baseline=profile,
        history_days=history.history_days,
        related=_related(lake, found, related_days),
    )


def _empty_timeline() -> pl.DataFrame:
    schema: dict[str, Any] = {
        "hour_start": pl.Datetime("us", "UTC"),
        s.EVENT_DATE: pl.Date,
        "hour_of_day": pl.Int32,
    }
    schema.update(dict.fromkeys(USAGE_COUNTS, pl.Int64))
    return pl.DataFrame(schema=schema)


# --- tuning -----------------------------------------------------------------------------------


def _scored_days(lake: Lake, days: Iterable[TimeLike]) -> list[dt.date]:
    present = set(lake.event_dates())
    wanted = sorted({_day(d) for d in days})
    absent = [d.isoformat() for d in wanted if d not in present]
    if absent:
        raise LakeError(f"no events for {', '.join(absent)} in {lake.name}")
    return wanted


def dry_run(lake: Lake, days: Iterable[TimeLike], config: Config | None = None) -> pl.DataFrame:
    """The alerts ``config`` would have raised on ``days``, without writing anything.

    Runs the real detection (``keytrail detect --dry-run``) so a what-if answer is exactly what
    the nightly run would do with those settings — the rules, the model, the merging into
    alerts and the suppressions. Columns: the alert schema; ``event_date`` is the scored day.
    Suppressed alerts are included with ``suppressed_by`` set.
    """
    frames = [
        detect.run(lake.local, day, config or Config(), dry_run=True).alerts
        for day in _scored_days(lake, days)
    ]
    if not frames:
        return alert_rows.empty_alerts()
    return _sort_alerts(pl.concat(frames, how="vertical_relaxed"))


@dataclass(frozen=True)
class ModelScores:
    """The isolation forest's view of one day: every scored (key, actor, hour) row.

    ``rows`` has ``key_arn``, ``actor``, ``hour_start``, ``calls``, ``anomaly`` (higher is more
    unusual; the alert's ``score``), ``flagged`` (the row became a model finding) and
    ``eligible_calls`` (it had at least ``min_calls`` calls). ``threshold`` is the anomaly
    above which an eligible row is flagged by the forest alone (rows far above their own busiest
    hours are flagged by the surge path regardless). ``silent_reason`` says why the model did
    not score, when it did not.
    """

    day: dt.date
    rows: pl.DataFrame
    threshold: float | None
    rows_trained: int
    silent_reason: str | None


def model_scores(lake: Lake, day: TimeLike, config: Config | None = None) -> ModelScores:
    """Score ``day`` with the isolation forest as detection does, keeping every row's score.

    Alerts keep only the rows that fired; tuning ``score_quantile`` or ``min_calls`` needs the
    whole distribution to see how close the next rows were.
    """
    settings = config or Config()
    target = _day(day)
    _scored_days(lake, [target])
    first, _ = bl.window(target, settings.baseline_window_days)
    rows = _features(lake, first, target)
    history = bl.build(rows.lazy(), target, settings.baseline_window_days)
    result = model.score_day(
        rows.filter(pl.col(s.EVENT_DATE) == target),
        rows.filter(pl.col(s.EVENT_DATE) < target),
        history,
        settings.model,
    )
    schema: dict[str, Any] = {
        s.KEY_ARN: pl.String, s.ACTOR: pl.String, "hour_start": pl.Datetime("us", "UTC"),
        "calls": pl.Int64, "anomaly": pl.Float64, "flagged": pl.Boolean,
        "eligible_calls": pl.Boolean,
    }  # fmt: skip
    if result.scores.height == 0:
        scored = pl.DataFrame(schema=schema)
    else:
        # Read from the scores, not the findings: a sweep across keys is one finding per actor.
        scored = (
            result.scores.with_columns(
                (-pl.col("score")).alias("anomaly"),
                (pl.col("calls") >= settings.model.min_calls).alias("eligible_calls"),
            )
            .select(list(schema))
            .sort("anomaly", descending=True)
        )
    return ModelScores(
        day=target,
        rows=scored,
        threshold=None if result.threshold is None else -result.threshold,
        rows_trained=result.rows_trained,
        silent_reason=result.silent_reason,
    )


def suppression_candidates(frame: pl.DataFrame, *, min_alerts: int = 2) -> pl.DataFrame:
    """Where a suppression would remove the most alerts: active alerts per detector and actor.

    Suppressions in ``keytrail.toml`` are usually written for one actor and one detector (a
    re-encryption job, a load-test role), so that is the grain here; the keys involved are
    listed, and :func:`suppression_toml` narrows the suppression to the key when there is only
    one. Being a candidate says an alert is *frequent*, never that it is *benign*: an attacker
    touching ten keys is a candidate too, which is why a suppression needs an owner and a reason.

    ``frame`` is alerts, e.g. from :func:`alerts` or :func:`dry_run`; already suppressed alerts
    are not counted. Columns: ``detector``, ``actor``, ``alerts``, ``days``, ``keys``,
    ``key_arns``, ``first_day``, ``last_day``, ``severity`` (the highest), ``reason`` (the
    latest), most alerts first.
    """
    active = frame.filter(pl.col(s.SUPPRESSED_BY).is_null() & pl.col(s.ACTOR).is_not_null())
    rank = pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, default=-1, return_dtype=pl.Int8)
    grouped = (
        active.sort(s.EVENT_DATE, s.WINDOW_START)
        .with_columns(rank.alias("rank"))
        .group_by(s.DETECTOR, s.ACTOR)
        .agg(
            pl.len().cast(pl.Int64).alias("alerts"),
            pl.col(s.EVENT_DATE).n_unique().cast(pl.Int64).alias("days"),
            pl.col(s.KEY_ARN).drop_nulls().n_unique().cast(pl.Int64).alias("keys"),
            pl.col(s.KEY_ARN).drop_nulls().unique().sort().alias("key_arns"),
            pl.col(s.EVENT_DATE).min().alias("first_day"),
            pl.col(s.EVENT_DATE).max().alias("last_day"),
            pl.col(s.SEVERITY).sort_by("rank").last().alias(s.SEVERITY),
            pl.col(s.REASON).last().alias(s.REASON),
        )
    )
    return grouped.filter(pl.col("alerts") >= min_alerts).sort(
        ["alerts", "days", s.DETECTOR, s.ACTOR], descending=[True, True, False, False]
    )


def suppress(frame: pl.DataFrame, config: Config, *, today: TimeLike | None = None) -> pl.DataFrame:
    """``frame`` (alerts) with ``suppressed_by`` set as ``config``'s suppressions would set it.

    Suppressions apply after detection, so trying one needs no new detection run: this is the
    function detection itself ends with. ``today`` decides which suppressions have expired
    (default: the current UTC date, as in the nightly run).
    """
    when = _day(today) if today is not None else dt.datetime.now(dt.UTC).date()
    return alert_rows.apply_suppressions(frame, config, when).alerts


def _glob_literal(value: str) -> str:
    """A suppression matcher that matches exactly ``value`` (matchers are globs)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in value)


def suppression_toml(
    candidate: Mapping[str, Any],
    *,
    id: str,
    owner: str,
    reason: str,
    expires: dt.date,
) -> str:
    """A ``[[suppression]]`` block for ``keytrail.toml`` matching one candidate exactly.

    ``candidate`` is a row of :func:`suppression_candidates` (or any mapping with ``detector``,
    ``actor`` and optionally ``key_arn`` or ``key_arns``). Matchers are escaped so that they
    match literally (they are globs), and the block is validated by the same parser the nightly
    run uses before it is returned: what a notebook proposes can be pasted into the file as is.
    """
    values: dict[str, str] = {}
    for name in (s.DETECTOR, s.ACTOR):
        if candidate.get(name) is not None:
            values[name] = str(candidate[name])
    keys = list(candidate.get("key_arns") or [])
    if candidate.get(s.KEY_ARN) is not None:
        keys = [str(candidate[s.KEY_ARN])]
    if len(keys) == 1:
        values[s.KEY_ARN] = keys[0]
    lines = [
        "[[suppression]]",
        f"id = {json.dumps(id)}",
        f"owner = {json.dumps(owner)}",
        f"reason = {json.dumps(reason)}",
        f"expires = {expires.isoformat()}",
        *(f"{name} = {json.dumps(_glob_literal(value))}" for name, value in values.items()),
    ]
    text = "\n".join(lines) + "\n"
    (suppression,) = cfg.parse(tomllib.loads(text), "suppression_toml").suppressions
    if not suppression.matches(values):
        raise ValueError(f"the suppression would not match its own candidate:\n{text}")
    return text
