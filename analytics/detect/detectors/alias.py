"""KMS.AliasRetargeted — an alias now points at a different key than before.

Applications name keys by alias (``alias/payments``), so moving an alias silently changes which
key encrypts new data: point it at a key the attacker controls (or one about to be deleted) and
every new ciphertext is theirs to hold hostage. Two paths do it:

* ``UpdateAlias`` — reported when its ``targetKeyId`` differs from the alias's last known
  target, or when no earlier mapping is known (an UpdateAlias exists to move an alias);
* ``DeleteAlias`` then ``CreateAlias`` of the same name — reported on the ``CreateAlias`` when
  the last known mapping of that name (from the history or earlier that day; a DeleteAlias
  names the key it detached in ``resources``) was a different key.

An alias is identified by (account, region, name); targets are compared by key ID, so an ARN
and a bare ID of the same key are the same target.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import (
    CONTROL_EVENTS,
    KMS_SOURCE,
    from_source,
    history_of,
    per_event_findings,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector, empty_findings
from analytics.lake import schema as s

CREATE = "CreateAlias"
UPDATE = "UpdateAlias"
DELETE = "DeleteAlias"
ALIAS_EVENTS = (CREATE, UPDATE, DELETE)

_ALIAS = "_alias"
_TARGET = "_target_key_id"
_COLUMNS = [s.EVENT_ID, s.EVENT_TIME, s.EVENT_SOURCE, s.EVENT_NAME, s.ERROR_CODE, s.ACTOR,
            s.AWS_REGION, s.RECIPIENT_ACCOUNT_ID, s.KEY_ARN, s.REQUEST_PARAMETERS]  # fmt: skip


def _key_id(value: pl.Expr) -> pl.Expr:
    """``arn:…:key/abcd`` and ``abcd`` are the same key."""
    return value.str.replace(r"^arn:[^:]*:kms:[^:]*:\d*:key/", "")


def _with_mapping(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the alias identity and the key it maps to after (or, for DeleteAlias, before) it."""
    request = pl.col(s.REQUEST_PARAMETERS)
    alias_name = request.str.json_path_match("$.aliasName")
    return frame.with_columns(
        pl.concat_str(
            [pl.col(s.RECIPIENT_ACCOUNT_ID), pl.col(s.AWS_REGION), alias_name],
            separator="|",
        ).alias(_ALIAS),
        alias_name.alias("_alias_name"),
        _key_id(
            pl.when(pl.col(s.EVENT_NAME) == DELETE)
            .then(pl.col(s.KEY_ARN))
            .otherwise(pl.coalesce(request.str.json_path_match("$.targetKeyId"), pl.col(s.KEY_ARN)))
        ).alias(_TARGET),
    )


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per UpdateAlias/CreateAlias that moved an alias to another key."""
    mapping_event = from_source(KMS_SOURCE, ALIAS_EVENTS) & succeeded()
    day = ctx.events.lazy().filter(mapping_event).pipe(_with_mapping).collect()
    if day.filter(pl.col(s.EVENT_NAME).is_in([CREATE, UPDATE])).is_empty():
        return empty_findings()
    aliases = day.get_column(_ALIAS).drop_nulls().unique()
    last_known = (
        history_of(ctx, CONTROL_EVENTS, mapping_event, _COLUMNS)
        .pipe(_with_mapping)
        .filter(pl.col(_ALIAS).is_in(aliases.implode()))
        .group_by(_ALIAS)
        .agg(pl.all().sort_by(s.EVENT_TIME, s.EVENT_ID).last())
        .collect()
    )
    timeline = (
        pl.concat(
            [
                last_known.with_columns(pl.lit(False).alias("_is_day")),
                day.with_columns(pl.lit(True).alias("_is_day")),
            ],
            how="diagonal_relaxed",
        )
        .filter(pl.col(_ALIAS).is_not_null())
        .sort(_ALIAS, s.EVENT_TIME, s.EVENT_ID)
        .with_columns(
            pl.col(name).shift(1).over(_ALIAS).alias("_prev" + name)
            for name in (_TARGET, s.EVENT_NAME, s.EVENT_ID, s.EVENT_TIME)
        )
    )
    prev_target = pl.col("_prev" + _TARGET)
    moved = (
        pl.col("_is_day")
        & pl.col(s.EVENT_NAME).is_in([CREATE, UPDATE])
        & (prev_target != pl.col(_TARGET)).fill_null(pl.col(s.EVENT_NAME) == UPDATE)
    )
    retargets = timeline.filter(moved)
    via_delete = pl.col("_prev" + s.EVENT_NAME) == DELETE
    how = (
        pl.when(pl.col(s.EVENT_NAME) == UPDATE)
        .then(pl.lit("with UpdateAlias"))
        .when(via_delete)
        .then(pl.lit("by deleting and re-creating it"))
        .otherwise(pl.lit("by re-creating it"))
    )
    previous = (
        pl.when(prev_target.is_not_null())
        .then(pl.format("from key {} ", shown(prev_target)))
        .otherwise(pl.lit("from a key not seen in the history window "))
    )
    reason = pl.format(
        "{} moved {} (account {}, {}) {}to key {} {}; applications using the alias now "
        "encrypt new data under that key.",
        shown(pl.col(s.ACTOR), "an unidentified principal"),
        shown(pl.col("_alias_name")),
        shown(pl.col(s.RECIPIENT_ACCOUNT_ID)),
        shown(pl.col(s.AWS_REGION)),
        previous,
        shown(pl.col(_TARGET)),
        how,
    )
    baseline = (
        pl.when(prev_target.is_not_null())
        .then(
            pl.format(
                "previous mapping from {} at {}",
                pl.col("_prev" + s.EVENT_NAME),
                pl.col("_prev" + s.EVENT_TIME).dt.strftime("%Y-%m-%d %H:%M UTC"),
            )
        )
        .otherwise(pl.lit("no earlier mapping of this alias known"))
    )
    # The event that last set the old mapping (the DeleteAlias, say) is part of the proof.
    evidence = pl.concat_list(pl.col("_prev" + s.EVENT_ID), pl.col(s.EVENT_ID)).list.drop_nulls()
    return per_event_findings(
        retargets,
        reason=reason,
        severity=pl.lit("medium"),
        pattern="CHANGE",
        baseline=baseline,
        account_id=pl.col(s.RECIPIENT_ACCOUNT_ID),
        evidence=evidence,
    )


DETECTOR = RuleDetector(
    id="KMS.AliasRetargeted",
    title="KMS alias moved to another key",
    severity="medium",
    mitre_attack=("T1486", "T1565"),
    description=(
        "An alias was pointed at a different KMS key, by UpdateAlias or by deleting and "
        "re-creating it. Applications that encrypt by alias switch keys without any code "
        "change: legitimate for manual rotation, but also how an attacker makes new data "
        "encrypt under a key they control or one that is about to be deleted."
    ),
    runbook=(
        "1. Confirm the move is a planned manual rotation (change ticket, same key owner, the "
        "new key's tags and description).\n"
        "2. Inspect the new target: `aws kms describe-key --key-id <new key>` - owner account, "
        "origin (EXTERNAL?), key state (PendingDeletion?), and its key policy.\n"
        "3. If unplanned, move the alias back: `aws kms update-alias --alias-name <alias> "
        "--target-key-id <old key>`.\n"
        "4. Find data encrypted under the new key since the move (lake: Encrypt and "
        "GenerateDataKey on the new key) and re-encrypt it under the right key.\n"
        "5. Restrict kms:UpdateAlias/CreateAlias/DeleteAlias with kms:AliasName conditions."
    ),
    detect=detect,
    history=(CONTROL_EVENTS,),
    history_days_needed=0,
)
