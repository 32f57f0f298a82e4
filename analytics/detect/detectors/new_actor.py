"""KMS.NewActorForKey — a principal used a key it has never used before.

The set of principals that use a key is one of the most stable facts about it: the payments
service role decrypts with the payments key, every day, and nobody else does. A new name in
that set is what the "allow-listed decrypt" requests (chronicle/detection-rules#111) and
auditors ("alert on unexpected principals calling kms:Decrypt") ask for. The entity is
(key ARN, actor) where ``actor`` is the stable identity — the role, never the session — so
rotating sessions and access keys do not look new.

Judgement calls, and why:

* **Service-mediated calls count as the actor's use.** When S3, Secrets Manager or SSM call
  KMS for a principal (``invoked_by`` set), the principal's own credentials and permissions
  were used; attackers read secrets through those services too, so dropping them would hide
  exactly the interesting case. A pair already seen (directly or via any service) is not new
  again because it used a different path: the reason says "via s3.amazonaws.com" so a reader
  can tell, and path changes are a feature for the learned model, not a rule.
* **Pure service principals are skipped** (``actor`` starting ``service:``, e.g. KMS-internal
  events or a service using a grant): they are AWS's own plumbing, not a who.
* **Only successful data-plane calls are "use"**; refused calls belong to
  KMS.FailedDecryptBurst and management reads are not use.
* **Warm-up**: with less than ``warmup_days`` (default 14) of history every pair would be new,
  so the rule is silent.

The isolation forest leaves actors without history to this rule, so the reason carries the
context a reader needs: when, how many calls, a person or a workload role, whether the actor
made no KMS call at all in the history (a new deployment or identity) or is known and only the
key is new, and for a known actor the source IPs and regions it never used for KMS before
(user agents are not in the rules' view of the day).

Severity is low, medium when the actor is a person (IAM user, Identity Center / SAML user, or
an ``AWSReservedSSO_`` permission-set role) — people decrypting production data by hand is
unusual — or when it belongs to an account outside the organisation and the key's account.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    DATA_PLANE_EVENTS,
    KMS_SOURCE,
    distinct_rows,
    from_source,
    history_of,
    is_person,
    setting,
    shown,
    succeeded,
    unseen_today,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector, empty_findings
from analytics.lake import schema as s

DEFAULTS: dict[str, Any] = {"warmup_days": 14}
_PAIR = [s.KEY_ARN, s.ACTOR]


def _key_use() -> pl.Expr:
    return (
        from_source(KMS_SOURCE, DATA_PLANE_EVENTS)
        & succeeded()
        & pl.col(s.KEY_ARN).is_not_null()
        & pl.col(s.ACTOR).is_not_null()
        & ~pl.col(s.ACTOR).str.starts_with("service:")
    )


KEY_USE_PAIRS = distinct_rows(
    "key_use_pairs",
    "distinct (key, actor) pairs of successful cryptographic calls by a principal that is not "
    "an AWS service: the pairs KMS.NewActorForKey has seen",
    _key_use(),
    _PAIR,
)
KMS_ORIGINS = distinct_rows(
    "kms_origins",
    "distinct (actor, source IP, region) of every KMS call with an actor: whether an actor "
    "called KMS at all, and from where",
    (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & pl.col(s.ACTOR).is_not_null(),
    [s.ACTOR, s.SOURCE_IP, s.AWS_REGION],
)


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """Per never-seen (key, actor) pair: the day's uses, first to last."""
    if ctx.history_days < setting(ctx, DEFAULTS, "warmup_days", int):
        return empty_findings()
    unseen = unseen_today(ctx, _key_use(), KEY_USE_PAIRS, _PAIR)
    if unseen.is_empty():
        return empty_findings()
    org = sorted(ctx.org_accounts)
    origins = _new_origins(ctx, unseen)
    new_pairs = (
        unseen.group_by(_PAIR)
        .agg(
            pl.col(s.EVENT_TIME).min().alias(s.WINDOW_START),
            pl.col(s.EVENT_TIME).max().alias(s.WINDOW_END),
            pl.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
            pl.col(s.EVENT_NAME).unique().sort().str.join(", ").alias("_operations"),
            pl.col(s.INVOKED_BY).drop_nulls().unique().sort().str.join(", ").alias("_services"),
            pl.col(s.INVOKED_BY).is_null().any().alias("_direct"),
            is_person().any().alias("_human"),
            pl.col(s.PRINCIPAL_ACCOUNT_ID).drop_nulls().first().alias("_caller_account"),
            pl.col(s.KEY_ACCOUNT_ID).drop_nulls().first().alias("_key_account"),
            pl.col(s.RECIPIENT_ACCOUNT_ID).drop_nulls().first().alias("_recipient"),
            pl.col(s.AWS_REGION).drop_nulls().first(),
            pl.col(s.INVOKED_BY).drop_nulls().first(),
            pl.col(s.EVENT_ID).alias(s.EVIDENCE_EVENT_IDS),
        )
        .with_columns(
            (
                ~pl.col("_caller_account").is_in(org)
                & (pl.col("_caller_account") != pl.col("_key_account"))
            )
            .fill_null(False)
            .alias("_outside"),
        )
        .join(origins, on=_PAIR, how="left")
    )
    path = (
        pl.when(pl.col("_services") == "")
        .then(pl.lit("directly"))
        .when(pl.col("_direct"))
        .then(pl.format("directly and via {}", shown(pl.col("_services"))))
        .otherwise(pl.format("via {}", shown(pl.col("_services"))))
    )
    notes = pl.concat_str(
        [
            pl.when(pl.col("_human"))
            .then(pl.lit("the actor is a person"))
            .otherwise(pl.lit("the actor is a workload role")),
            pl.when(pl.col("_actor_new"))
            .then(pl.format("the actor itself made no KMS call in the previous {} days (a new "
                            "deployment or a new identity)", pl.lit(ctx.history_days)))
            .otherwise(pl.lit("the actor is known, this key is new to it")),
            pl.when(pl.col("_outside")).then(
                pl.format("the actor's account {} is outside the organisation",
                          shown(pl.col("_caller_account")))
            ),
            pl.when(~pl.col("_actor_new")).then(
                _listed("_new_ips", "from {}, never seen for this actor on KMS")
            ),
            pl.when(~pl.col("_actor_new")).then(
                _listed("_new_regions", "in {}, where this actor never called KMS before")
            ),
        ],
        separator="; ",
        ignore_nulls=True,
    )  # fmt: skip
    reason = pl.format(
        "{} used KMS key {} for the first time in {} days: {} call(s) ({}) {}, {}; {}.",
        shown(pl.col(s.ACTOR)),
        shown(pl.col(s.KEY_ARN)),
        pl.lit(ctx.history_days),
        pl.col(s.EVIDENCE_COUNT),
        shown(pl.col("_operations")),
        path,
        _span(),
        notes,
    )
    return new_pairs.sort(s.WINDOW_START, s.KEY_ARN, s.ACTOR).select(
        pl.col(s.KEY_ARN),
        pl.col(s.ACTOR),
        pl.coalesce(pl.col("_key_account"), pl.col("_recipient")).alias(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col(s.INVOKED_BY),
        pl.col(s.WINDOW_START),
        pl.col(s.WINDOW_END),
        reason.alias(s.REASON),
        pl.lit(f"pair never seen in the previous {ctx.history_days} days").alias(s.BASELINE),
        pl.lit("UNSEEN").alias(s.OBSERVED_PATTERN),
        pl.col(s.EVIDENCE_EVENT_IDS),
        pl.col(s.EVIDENCE_COUNT),
        pl.when(pl.col("_human") | pl.col("_outside"))
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
        .alias(s.SEVERITY),
    )


def _new_origins(ctx: DetectionContext, unseen: pl.DataFrame) -> pl.DataFrame:
    """Per new pair: whether its actor made any KMS call in the history at all, and the source
    IPs and regions of the day's uses from which the actor never called KMS before (the same
    questions the isolation forest asks, so the two agree on what is new).

    Only the KMS origins of today's new actors are read.
    """
    actors = unseen.get_column(s.ACTOR).unique()
    mine = pl.col(s.ACTOR).is_in(actors.implode())
    seen = history_of(ctx, KMS_ORIGINS, mine).unique().collect()
    # A service calling for the actor puts its own name in sourceIPAddress: not an origin.
    today = unseen.select(
        *_PAIR,
        pl.when(pl.col(s.INVOKED_BY).is_null()).then(pl.col(s.SOURCE_IP)).alias(s.SOURCE_IP),
        s.AWS_REGION,
    ).unique()

    def new_values(column: str) -> pl.DataFrame:
        known = seen.select(s.ACTOR, column).drop_nulls().unique()
        return (
            today.drop_nulls(column)
            .join(known, on=[s.ACTOR, column], how="anti")
            .group_by(_PAIR)
            .agg(pl.col(column).unique().sort().alias(f"_new_{column}"))
        )

    known_actors = seen.get_column(s.ACTOR).unique().implode()
    return (
        today.select(_PAIR)
        .unique()
        .with_columns((~pl.col(s.ACTOR).is_in(known_actors)).alias("_actor_new"))
        .join(new_values(s.SOURCE_IP), on=_PAIR, how="left")
        .join(new_values(s.AWS_REGION), on=_PAIR, how="left")
        .rename({f"_new_{s.SOURCE_IP}": "_new_ips", f"_new_{s.AWS_REGION}": "_new_regions"})
    )


def _listed(column: str, template: str) -> pl.Expr:
    """``template`` around the first values of a list column (and how many more), or null."""
    values = pl.col(column).fill_null([])
    text = values.list.head(3).list.join(", ") + pl.when(values.list.len() > 3).then(
        pl.format(" and {} more", values.list.len() - 3)
    ).otherwise(pl.lit(""))
    return pl.when(values.list.len() > 0).then(pl.format(template, shown(text, limit=400)))


def _span() -> pl.Expr:
    """'10:06–10:57 UTC' for a pair's first to last use of the day ('at 10:06 UTC' for one)."""
    start = pl.col(s.WINDOW_START).dt.strftime("%H:%M")
    end = pl.col(s.WINDOW_END).dt.strftime("%H:%M")
    return (
        pl.when(start == end)
        .then(pl.format("at {} UTC", start))
        .otherwise(pl.format("{}–{} UTC", start, end))
    )


DETECTOR = RuleDetector(
    id="KMS.NewActorForKey",
    title="New principal using a KMS key",
    severity="low",
    mitre_attack=("T1078.004", "T1555"),
    description=(
        "A principal (role, user, federated identity) successfully used a KMS key for "
        "cryptographic operations for the first time in the history window. Calls made for "
        "it by AWS services (S3, Secrets Manager, SSM) count as its own use. Medium when the "
        "principal is a person or from an account outside the organisation; silent during "
        "the warm-up (default 14 days of history)."
    ),
    runbook=(
        "1. Check who owns the actor (role tags, Identity Center assignment) and whether a "
        "deployment or new service explains the first use.\n"
        "2. Read the evidence events' encryption contexts to see which data was decrypted "
        "(S3 object, secret, parameter).\n"
        "3. For a person, confirm the access with them and their manager; hands-on decrypts of "
        "production data usually need a ticket.\n"
        "4. If unexpected, remove the permission that let it in (key policy statement, IAM "
        "policy or grant) and rotate the data or secrets it read.\n"
        "5. If expected and lasting, no action: the pair is part of the baseline from now on."
    ),
    detect=detect,
    defaults=DEFAULTS,
    history=(KEY_USE_PAIRS, KMS_ORIGINS),
    history_days_needed=DEFAULTS["warmup_days"],
)
