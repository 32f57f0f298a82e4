"""The isolation forest: unusual hourly (key, actor) usage, explained in words.

Every feature is relative to the entity's own baseline (volume against its usual volume at that
hour, never-seen origins, the actor's usual hours), so a role making a million calls a day and a
human making ten are comparable. The forest is trained on the baseline window's hourly rows and
scores the target day's rows; ``random_state`` is fixed, so the same lake gives the same scores.

Each flagged row is explained by occlusion: every feature in turn is set back to its usual value
and the row re-scored; the features whose reset makes the row look most normal are the ones that
drove the alert, and their contributions are reported with a sentence built from the row's own
numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from analytics.detect.baselines import PAIR, Baselines
from analytics.lake import schema as s

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

DETECTOR_ID = "KMS.UnusualKeyUsage"
MODEL_FEATURES: tuple[str, ...] = (
    "volume_vs_usual",
    "volume_vs_peak",
    "error_ratio_excess",
    "new_source_ips",
    "new_regions",
    "new_user_agents",
    "new_key_for_actor",
    "off_hours",
    "new_caller_accounts",
    "keys_vs_usual",
)
OPERATION_COLUMNS = {
    "decrypt_calls": "Decrypt",
    "encrypt_calls": "Encrypt",
    "generate_data_key_calls": "GenerateDataKey",
    "re_encrypt_calls": "ReEncrypt",
    "sign_verify_mac_calls": "Sign/Verify/MAC",
    "management_calls": "management",
    "read_calls": "read",
}


@dataclass(frozen=True)
class ModelSettings:
    n_estimators: int = 200
    max_samples: int = 256
    random_state: int = 20261129
    score_quantile: float = 0.001
    min_calls: int = 20
    min_history_days: int = 7
    top_features: int = 3
    exclude_service_actors: bool = True
    surge_factor: float = 4.0


@dataclass
class ModelResult:
    findings: pl.DataFrame
    rows_scored: int
    rows_trained: int
    silent_reason: str | None = None
    threshold: float | None = None
    scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    rows_without_history: int = 0
    """Scored rows of actors absent from the baseline window: never flagged (see score_day)."""


def _entity_rows(features: pl.DataFrame, settings: ModelSettings) -> pl.DataFrame:
    rows = features.filter(pl.col(s.KEY_ARN).is_not_null())
    if settings.exclude_service_actors:
        # AWS service principals act for the whole account; their volume is the account's, and
        # rules (not the model) watch what services do. Callers behind a service stay in.
        rows = rows.filter(~pl.col(s.ACTOR).str.starts_with("service:"))
    return rows.with_columns((pl.col("iso_weekday") >= 6).alias("weekend"))


def _count_new(rows: pl.DataFrame, baselines: Baselines, name: str, entity: str, values: str,
               scoring: bool) -> pl.DataFrame:  # fmt: skip
    """How many of a row's values were never seen with its entity (before that row's day)."""
    seen = baselines.first_seen[name].select(entity, "value", "first_seen")
    exploded = (
        rows.select("row_id", entity, s.EVENT_DATE, pl.col(values).alias("value"))
        .explode("value")
        .drop_nulls("value")
        .join(seen, on=[entity, "value"], how="left")
    )
    if scoring:
        new = pl.col("first_seen").is_null()
    else:  # in training, a value is new on the day it first appeared (after the lake's first days)
        new = (pl.col("first_seen") == pl.col(s.EVENT_DATE)) & (
            pl.col(s.EVENT_DATE) > baselines.novelty_from
        )
    return exploded.group_by("row_id").agg(
        new.sum().cast(pl.Int64).alias(f"new_{values}"),
        pl.col("value").filter(new).alias(f"new_{values}_list"),
    )


def matrix(rows: pl.DataFrame, baselines: Baselines, scoring: bool) -> pl.DataFrame:
    """Model features for hourly rows, each relative to the row's own baseline."""
    rows = rows.with_row_index("row_id")
    seasonal = baselines.pair_seasonal.select(
        [*PAIR, "hour_of_day", "weekend", "calls_median", "calls_mad"]
    )
    profile = baselines.pair_profile.select(
        [
            *PAIR,
            "active_hour_median",
            "active_hour_p99",
            "active_hours",
            "error_ratio",
            "first_seen",
        ]
    )
    actor = baselines.actor_profile.select(
        s.ACTOR, "distinct_keys_p99", pl.lit(True).alias("actor_has_history")
    )
    keys_per_actor_hour = rows.group_by([s.ACTOR, "hour_start"]).agg(
        pl.col(s.KEY_ARN).n_unique().alias("actor_keys_this_hour")
    )
    frame = (
        rows.join(seasonal, on=[*PAIR, "hour_of_day", "weekend"], how="left")
        .join(profile, on=PAIR, how="left")
        .join(actor, on=s.ACTOR, how="left")
        .join(baselines.actor_hours, on=[s.ACTOR, "hour_of_day"], how="left")
        .join(keys_per_actor_hour, on=[s.ACTOR, "hour_start"], how="left")
    )
    for name, values in (("actor_ip", "source_ips"), ("actor_region", "regions"),
                         ("actor_user_agent", "user_agent_families")):  # fmt: skip
        frame = frame.join(
            _count_new(rows, baselines, name, s.ACTOR, values, scoring), on="row_id", how="left"
        )
    frame = frame.join(
        _count_new(rows, baselines, "key_caller_account", s.KEY_ARN, "caller_accounts", scoring),
        on="row_id",
        how="left",
    )
    usual = pl.col("calls_median").fill_null(0.0)
    hour_share = pl.col("hour_share").fill_null(0.0)
    if scoring:
        new_pair = pl.col("first_seen").is_null()
    else:
        new_pair = (pl.col("first_seen") == pl.col(s.EVENT_DATE)) & (
            pl.col(s.EVENT_DATE) > baselines.novelty_from
        )
    return frame.with_columns(
        ((pl.col("calls") + 1.0) / (usual + 1.0)).log(2).alias("volume_vs_usual"),
        # Against the pair's own busiest hours: a sporadic pair's usual spikes are not news,
        # a burst far above anything it did in the window is.
        ((pl.col("calls") + 1.0) / (pl.col("active_hour_p99").fill_null(0.0) + 1.0))
        .log(2)
        .alias("volume_vs_peak"),
        (pl.col("errors") / pl.col("calls") - pl.col("error_ratio").fill_null(0.0)).alias(
            "error_ratio_excess"
        ),
        pl.col("new_source_ips").fill_null(0).cast(pl.Float64),
        pl.col("new_regions").fill_null(0).cast(pl.Float64),
        pl.col("new_user_agent_families").fill_null(0).cast(pl.Float64).alias("new_user_agents"),
        new_pair.cast(pl.Float64).alias("new_key_for_actor"),
        # -log10 of the share of the actor's calls made at this hour of day: 0 for its busiest
        # hour, 3 for an hour it never used.
        (-(hour_share + 0.001).log10()).alias("off_hours"),
        pl.col("new_caller_accounts").fill_null(0).cast(pl.Float64),
        (
            (pl.col("actor_keys_this_hour") + 1.0)
            / (pl.col("distinct_keys_p99").fill_null(1.0) + 1.0)
        )
        .log(2)
        .alias("keys_vs_usual"),
        usual.alias("usual_calls"),
        pl.col("actor_has_history").fill_null(False),
        pl.col("first_seen").is_not_null().alias("pair_has_history"),
    )


def _fit(train: np.ndarray[Any, Any], settings: ModelSettings) -> IsolationForest:
    from sklearn.ensemble import IsolationForest  # heavy: loaded only when a model is fitted

    forest = IsolationForest(
        n_estimators=settings.n_estimators,
        max_samples=min(settings.max_samples, len(train)),
        contamination="auto",
        random_state=settings.random_state,
        n_jobs=1,
    )
    forest.fit(train)
    return forest


def score_day(
    day_features: pl.DataFrame,
    history_features: pl.DataFrame,
    baselines: Baselines,
    settings: ModelSettings | None = None,
    day_events: pl.DataFrame | None = None,
) -> ModelResult:
    """Score the day's hourly rows; returns findings for the rows the forest isolates.

    Cold start, per entity: an actor absent from the baseline window has nothing to be compared
    with, and the forest would call everything it does new, so its rows are scored but never
    flagged; the first-seen rules (KMS.NewActorForKey, KMS.NewCrossAccountCaller) speak for it.
    A known actor's first use of a key is judged against the actor's own origins and hours, but
    with no volume history for the pair it is at most ``low`` and says so.

    ``day_events`` (``event_id``, ``event_time``, ``key_arn``, ``actor``) give a sweep across
    keys its evidence (see :func:`_sweeps`); without them a sweep carries no event IDs.
    """
    settings = settings or ModelSettings()
    from analytics.detect.detectors.base import empty_findings

    today = _entity_rows(day_features, settings)
    if baselines.history_days < settings.min_history_days:
        reason = (
            f"isolation forest silent: {baselines.history_days} day(s) of history before "
            f"{baselines.day}, it needs {settings.min_history_days}"
        )
        return ModelResult(empty_findings(), 0, 0, silent_reason=reason)
    history = _entity_rows(history_features, settings)
    train_frame = matrix(history, baselines, scoring=False)
    score_frame = matrix(today, baselines, scoring=True)
    if train_frame.height < 50 or score_frame.height == 0:
        reason = (
            f"isolation forest silent: {train_frame.height} training rows, "
            f"{score_frame.height} to score"
        )
        return ModelResult(empty_findings(), score_frame.height, train_frame.height, reason)
    columns = list(MODEL_FEATURES)
    train = train_frame.select(columns).fill_null(0.0).fill_nan(0.0).to_numpy()
    forest = _fit(train, settings)
    train_scores = forest.score_samples(train)
    scored = score_frame.select(columns).fill_null(0.0).fill_nan(0.0).to_numpy()
    scores = forest.score_samples(scored)
    score_frame = score_frame.with_columns(pl.Series("score", scores))
    # The forest ranks; a row must also carry enough evidence to be worth a person's time:
    # enough calls, or an origin (IP, region, user agent, account) never seen for its actor.
    # The threshold is a quantile of the *eligible* training rows, so the many one-call rows
    # that the forest finds odd but nobody should be paged for do not set the bar.
    threshold = float(np.quantile(train_scores, settings.score_quantile))
    eligible = _eligible(score_frame, settings)
    # A forest scores a value beyond anything in its training sample like the largest value it
    # saw, so a burst far above an entity's own busiest hours is caught by its baseline instead:
    # the same row, the same explanation, flagged either way.
    surge = (
        score_frame.select(
            (pl.col("volume_vs_peak") >= math.log2(settings.surge_factor))
            & (pl.col("active_hours").fill_null(0) >= 1)
        )
        .to_series()
        .to_numpy()
    )
    known_actor = score_frame.get_column("actor_has_history").to_numpy()
    flagged_mask = ((scores < threshold) | surge) & eligible & known_actor
    typical = np.median(train, axis=0)
    explanations = _explain(forest, scored[flagged_mask], typical, settings.top_features)
    flagged = score_frame.filter(pl.Series(flagged_mask))
    findings = _sweeps(_findings(flagged, explanations, typical), day_events)
    return ModelResult(
        findings, score_frame.height, train_frame.height, threshold=threshold,
        scores=score_frame.with_columns(pl.Series("flagged", flagged_mask)).select(
            [*PAIR, "hour_start", "calls", "score", "flagged"]
        ),
        rows_without_history=int((~known_actor).sum()),
    )  # fmt: skip


def _eligible(frame: pl.DataFrame, settings: ModelSettings) -> np.ndarray[Any, Any]:
    """Rows with enough calls, or with an origin never seen for their actor."""
    novel = (
        pl.sum_horizontal("new_source_ips", "new_regions", "new_user_agents", "new_caller_accounts")
        > 0
    )
    mask = frame.select(novel | (pl.col("calls") >= settings.min_calls)).to_series()
    return mask.to_numpy()


def _explain(forest: IsolationForest, rows: np.ndarray[Any, Any], typical: np.ndarray[Any, Any],
             top: int) -> list[list[tuple[int, float]]]:  # fmt: skip
    """Per row, the features whose reset to the usual value raises the score most (occlusion)."""
    if len(rows) == 0:
        return []
    base = forest.score_samples(rows)
    gains = np.zeros_like(rows, dtype=float)
    for j in range(rows.shape[1]):
        probe = rows.copy()
        probe[:, j] = typical[j]
        gains[:, j] = forest.score_samples(probe) - base
    result = []
    for i in range(len(rows)):
        order = np.argsort(-gains[i])
        result.append([(int(j), float(gains[i, j])) for j in order[:top] if gains[i, j] > 0])
    return result


def _hours(start: dt.datetime) -> str:
    return f"{start:%H:%M}–{(start + dt.timedelta(hours=1)):%H:%M}"


def _fmt(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def describe(row: dict[str, Any], feature: str) -> str:
    """One plain-language clause for a feature of a scored row (values are the row's own)."""
    operations = {OPERATION_COLUMNS[c]: row.get(c) or 0 for c in OPERATION_COLUMNS}
    operation = max(operations, key=lambda k: operations[k])
    window = _hours(row["hour_start"])
    if feature in ("volume_vs_usual", "volume_vs_peak"):
        p99 = row.get("active_hour_p99")
        p99_text = f", p99 {_fmt(p99)}" if p99 is not None else ""
        return (
            f"{operation} {row['calls']:,} calls {window} vs usual {_fmt(row['usual_calls'])}"
            f"{p99_text}"
        )
    if feature == "new_source_ips":
        ips = row.get("new_source_ips_list") or []
        plural = "s" if len(ips) != 1 else ""
        return f"from {len(ips)} IP{plural} never seen for this actor ({', '.join(ips[:3])})"
    if feature == "new_regions":
        return f"in region {', '.join(row.get('new_regions_list') or [])} never used by this actor"
    if feature == "new_user_agents":
        agents = ", ".join(row.get("new_user_agent_families_list") or [])
        return f"with user agent {agents} never seen for this actor"
    if feature == "new_key_for_actor":
        return "first use of this key by this actor in the baseline window"
    if feature == "off_hours":
        share = 10 ** (-row["off_hours"]) - 0.001
        return f"at {window} UTC, when this actor usually makes {max(share, 0.0):.1%} of its calls"
    if feature == "error_ratio_excess":
        ratio = row["errors"] / row["calls"] if row["calls"] else 0.0
        return f"{ratio:.0%} of calls failed vs usual {(row.get('error_ratio') or 0.0):.0%}"
    if feature == "new_caller_accounts":
        accounts = ", ".join(row.get("new_caller_accounts_list") or [])
        return f"called from account {accounts} never seen on this key"
    if feature == "keys_vs_usual":
        usual = _fmt(row.get("distinct_keys_p99") or 1)
        return f"touching {row['actor_keys_this_hour']} keys in the hour (usually at most {usual})"
    return feature


_NOVELTY = ("new_source_ips", "new_regions", "new_user_agents", "new_caller_accounts")
COLD_PAIR_SEVERITY = "low"
"""The most a finding on a (key, actor) pair with no history in the baseline window may be."""
NO_PAIR_HISTORY = (
    "no history of this actor on this key in the baseline window (first use: volume not "
    "judged, see KMS.NewActorForKey)"
)
SWEEP_KEYS_SHOWN = 3


def _pattern(features: list[str]) -> str:
    if not features:
        return "RARE"
    lead = features[0]
    if lead in ("volume_vs_usual", "volume_vs_peak", "keys_vs_usual"):
        return "SURGE"
    if lead == "off_hours":
        return "OFF_HOURS"
    if lead == "error_ratio_excess":
        return "FAILURES"
    if lead.startswith("new_"):
        return "UNSEEN"
    return "RARE"


def _severity(row: dict[str, Any], names: list[str]) -> str:
    """High needs a surge or failures *and* a novel origin; otherwise medium (or low)."""
    novel = any(row[n] > 0 for n in ("new_source_ips", "new_regions", "new_user_agents",
                                     "new_caller_accounts"))  # fmt: skip
    surge = row["volume_vs_peak"] >= math.log2(4) or row["keys_vs_usual"] >= 2
    failing = row["error_ratio_excess"] >= 0.5
    if (surge or failing) and novel:
        return "high"
    if surge or failing or novel or row["off_hours"] >= 2:
        return "medium"
    return "low"


def _findings(
    flagged: pl.DataFrame,
    explanations: list[list[tuple[int, float]]],
    typical: np.ndarray[Any, Any],
) -> pl.DataFrame:
    from analytics.detect.detectors.base import FINDING_COLUMNS, empty_findings

    if flagged.height == 0:
        return empty_findings()
    records = []
    for row, explanation in zip(flagged.iter_rows(named=True), explanations, strict=True):
        gains = {MODEL_FEATURES[j]: gain for j, gain in explanation}
        names = list(gains)
        if row["volume_vs_peak"] >= 1 and "volume_vs_peak" not in names:
            names.insert(0, "volume_vs_peak")
        names += [n for n in _NOVELTY if row[n] > 0 and n not in names]
        clauses = list(dict.fromkeys(describe(row, n) for n in names))  # volume twice → once
        if not clauses:
            clauses = [describe(row, "volume_vs_usual")]
        severity = _severity(row, names)
        if not row["pair_has_history"]:
            # No volume history for the pair: the forest measured it against nothing.
            first_use = describe(row, "new_key_for_actor")
            clauses = [NO_PAIR_HISTORY, *(c for c in clauses if c != first_use)]
            severity = min(severity, COLD_PAIR_SEVERITY, key=s.SEVERITIES.index)
        reason = "; ".join(clauses)
        reason = reason[0].upper() + reason[1:]
        records.append(
            {
                s.KEY_ARN: row[s.KEY_ARN],
                s.ACTOR: row[s.ACTOR],
                s.ACCOUNT_ID: row.get(s.KEY_ACCOUNT_ID),
                s.AWS_REGION: (row.get("regions") or [None])[0],
                s.INVOKED_BY: (row.get("invoked_by_services") or [None])[0],
                s.WINDOW_START: row["hour_start"],
                s.WINDOW_END: row["hour_start"] + dt.timedelta(hours=1),
                s.REASON: reason,
                s.BASELINE: (
                    f"hourly calls of this key by this actor at {row['hour_of_day']:02d}:00 over "
                    f"the baseline window: median {_fmt(row['usual_calls'])}, "
                    f"p99 of active hours {_fmt(row.get('active_hour_p99') or 0)}"
                ),
                s.OBSERVED_PATTERN: _pattern(names),
                s.EVIDENCE_EVENT_IDS: [],
                s.EVIDENCE_COUNT: int(row["calls"]),
                s.SCORE: float(-row["score"]),
                s.SEVERITY: severity,
                s.TOP_FEATURES: [
                    {
                        "name": name,
                        "value": float(row[name]),
                        "usual": float(typical[MODEL_FEATURES.index(name)]),
                        "contribution": gains.get(name, 0.0),
                        "text": describe(row, name),
                    }
                    for name in names
                ],
            }
        )
    return pl.DataFrame(records, schema=FINDING_COLUMNS)


def _short_key(key_arn: str) -> str:
    """``<account>:key/<first 8 of the id>``: enough to tell keys apart inside a sentence."""
    from analytics.detect.detectors._common import clip_text

    parts = key_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "kms":
        kind, _, ident = parts[5].partition("/")
        return clip_text(f"{parts[4]}:{kind}/{ident[:8] if kind == 'key' else ident}", 80)
    return clip_text(key_arn, 80)


def _sweep_evidence(rows: pl.DataFrame, day_events: pl.DataFrame | None) -> pl.DataFrame:
    """Per actor, event IDs of its flagged (key, hour) rows, taking each key's first events in
    turn so every key of the sweep is represented within the evidence limit."""
    schema: dict[str, pl.DataType] = {
        s.ACTOR: pl.String(),
        s.EVIDENCE_EVENT_IDS: pl.List(pl.String),
    }
    if day_events is None or day_events.height == 0:
        return pl.DataFrame(schema=schema)
    hours = rows.select(s.KEY_ARN, s.ACTOR, pl.col(s.WINDOW_START).alias("hour_start"))
    return (
        day_events.select(s.EVENT_ID, s.EVENT_TIME, s.KEY_ARN, s.ACTOR)
        .with_columns(pl.col(s.EVENT_TIME).dt.truncate("1h").alias("hour_start"))
        .join(hours, on=[s.KEY_ARN, s.ACTOR, "hour_start"], how="inner")
        .sort(s.EVENT_TIME, s.EVENT_ID)
        .with_columns(pl.int_range(pl.len()).over(s.ACTOR, s.KEY_ARN).alias("turn"))
        .sort(s.ACTOR, "turn", s.EVENT_TIME, s.EVENT_ID)
        .group_by(s.ACTOR, maintain_order=True)
        .agg(pl.col(s.EVENT_ID).head(s.MAX_EVIDENCE_IDS).alias(s.EVIDENCE_EVENT_IDS))
        .select(list(schema))
    )


def _sweeps(findings: pl.DataFrame, day_events: pl.DataFrame | None) -> pl.DataFrame:
    """One finding per actor whose flagged rows of the day span several keys.

    A sweep (one actor trying key after key) is one story: an alert per key would bury it and
    the rule alerts beside it. The finding names how many keys and which, sums the calls, keeps
    the highest score and severity, and merges the features that drove each row. Its
    ``key_arn`` is null — the entity is the actor; the keys are its ``related_key_arns``, most
    used first — so its ``alert_id`` (detector, key, actor,
    window) is the same on every rerun, and a suppression written for one key cannot silence a
    sweep across many. Actors flagged on one key keep their per-key findings.
    """
    if findings.height == 0:
        return findings
    keys_per_actor = pl.col(s.KEY_ARN).n_unique().over(s.ACTOR)
    single = findings.filter(keys_per_actor == 1)
    multi = findings.filter(keys_per_actor > 1)
    if multi.height == 0:
        return findings
    evidence = _sweep_evidence(multi, day_events)
    rank = pl.col(s.SEVERITY).replace_strict(
        {name: i for i, name in enumerate(s.SEVERITIES)}, return_dtype=pl.Int8
    )
    per_key = (
        multi.group_by(s.ACTOR, s.KEY_ARN)
        .agg(pl.col(s.EVIDENCE_COUNT).sum().alias("calls"), pl.col(s.SCORE).max())
        .sort([s.ACTOR, "calls", s.SCORE, s.KEY_ARN], descending=[False, True, True, False])
    )
    names = {key: _short_key(key) for key in per_key.get_column(s.KEY_ARN).unique().to_list()}
    records = []
    for (actor,), rows in multi.sort(s.SCORE, descending=True).group_by(
        s.ACTOR, maintain_order=True
    ):
        keys = per_key.filter(pl.col(s.ACTOR) == actor).get_column(s.KEY_ARN).to_list()
        lead = rows.row(0, named=True)  # the most anomalous row explains the sweep
        shown = ", ".join(names[k] for k in keys[:SWEEP_KEYS_SHOWN])
        more = len(keys) - SWEEP_KEYS_SHOWN
        listed = f"{shown} and {more} more" if more > 0 else shown
        calls = int(rows.get_column(s.EVIDENCE_COUNT).sum())
        hours = rows.get_column(s.WINDOW_START).n_unique()
        found = evidence.filter(pl.col(s.ACTOR) == actor)
        ids = found.get_column(s.EVIDENCE_EVENT_IDS)[0].to_list() if found.height else []
        records.append(
            {
                s.KEY_ARN: None,
                s.RELATED_KEY_ARNS: keys,
                s.ACTOR: actor,
                s.ACCOUNT_ID: lead[s.ACCOUNT_ID],
                s.AWS_REGION: lead[s.AWS_REGION],
                s.INVOKED_BY: lead[s.INVOKED_BY],
                s.WINDOW_START: rows.get_column(s.WINDOW_START).min(),
                s.WINDOW_END: rows.get_column(s.WINDOW_END).max(),
                s.REASON: (
                    f"Unusual use of {len(keys)} keys by one actor ({listed}): {calls:,} calls "
                    f"in {hours} hour(s); on the most unusual: {_lowered(lead[s.REASON])}"
                ),
                s.BASELINE: f"each key's own baseline; on the most unusual: {lead[s.BASELINE]}",
                s.OBSERVED_PATTERN: lead[s.OBSERVED_PATTERN],
                s.EVIDENCE_EVENT_IDS: ids,
                s.EVIDENCE_COUNT: calls,
                s.SCORE: lead[s.SCORE],
                s.SEVERITY: s.SEVERITIES[int(rows.select(rank.max()).item())],
                s.TOP_FEATURES: _merged_features(rows),
            }
        )
    from analytics.detect.detectors.base import FINDING_COLUMNS

    swept = pl.DataFrame(records, schema=FINDING_COLUMNS)
    return pl.concat([single, swept]).sort(s.WINDOW_START, s.KEY_ARN, s.ACTOR, nulls_last=True)


def _lowered(sentence: str) -> str:
    """A reason continued inside another sentence (operation names keep their capital)."""
    if sentence.split(" ", 1)[0] in OPERATION_COLUMNS.values():
        return sentence
    return sentence[:1].lower() + sentence[1:]


def _merged_features(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """Each feature once, from the row where it contributed most, strongest first."""
    best: dict[str, dict[str, Any]] = {}
    for features in rows.get_column(s.TOP_FEATURES).to_list():
        for feature in features or []:
            held = best.get(feature["name"])
            if held is None or feature["contribution"] > held["contribution"]:
                best[feature["name"]] = feature
    return sorted(best.values(), key=lambda f: -f["contribution"])
