"""KMS.ImportedKeyMaterialChanged — key material was imported into a key or deleted from it.

Keys with imported material (origin ``EXTERNAL``) are the one kind whose material exists
outside AWS and can be removed without a waiting period: ``DeleteImportedKeyMaterial`` makes
the key unusable at once, and importing material someone else generated means they can decrypt
outside AWS. Both are rare, deliberate operations, so each successful call is reported.

A ``CreateKey`` with ``origin: EXTERNAL`` is the normal first step of that workflow and is not
a finding on its own; when one is found for the key (that day or in the history) it is quoted
in the reason, because "created an hour ago by the same person" and "a key nobody remembers"
call for different responses.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import (
    CONTROL_EVENTS,
    KMS_SOURCE,
    UTC_US,
    from_source,
    history_of,
    per_event_findings,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

IMPORT = "ImportKeyMaterial"
DELETE = "DeleteImportedKeyMaterial"
CREATE = "CreateKey"


def _created_key_arn() -> pl.Expr:
    """CreateKey names its new key in ``resources`` and in ``keyMetadata.arn``."""
    return pl.coalesce(
        pl.col(s.KEY_ARN), pl.col(s.RESPONSE_ELEMENTS).str.json_path_match("$.keyMetadata.arn")
    )


def _external_creations(ctx: DetectionContext, keys: pl.Series) -> pl.DataFrame:
    """The latest CreateKey with origin EXTERNAL of each key in ``keys``, day or history."""
    columns = [s.EVENT_TIME, s.EVENT_SOURCE, s.EVENT_NAME, s.ERROR_CODE, s.ACTOR,
               s.KEY_ARN, s.REQUEST_PARAMETERS, s.RESPONSE_ELEMENTS]  # fmt: skip
    is_external_create = (
        from_source(KMS_SOURCE, (CREATE,))
        & succeeded()
        & (pl.col(s.REQUEST_PARAMETERS).str.json_path_match("$.origin") == "EXTERNAL")
    )
    past = history_of(ctx, CONTROL_EVENTS, is_external_create, columns).collect()
    today = ctx.events.filter(is_external_create).select(columns)
    both = pl.concat([past, today], how="vertical_relaxed")
    return (
        both.with_columns(_created_key_arn().alias("_created_key"))
        .filter(pl.col("_created_key").is_in(keys.implode()))
        .group_by("_created_key")
        .agg(
            pl.col(s.EVENT_TIME).max().alias("_created_at"),
            pl.col(s.ACTOR).sort_by(s.EVENT_TIME).last().alias("_created_by"),
        )
    )


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per successful ImportKeyMaterial / DeleteImportedKeyMaterial."""
    events = ctx.events.filter(from_source(KMS_SOURCE, (IMPORT, DELETE)), succeeded())
    if events.is_empty():
        return _findings(events)
    creations = _external_creations(ctx, events.get_column(s.KEY_ARN).drop_nulls().unique())
    events = events.join(
        creations, left_on=s.KEY_ARN, right_on="_created_key", how="left", nulls_equal=False
    )
    return _findings(events)


def _findings(events: pl.DataFrame) -> pl.DataFrame:
    request = pl.col(s.REQUEST_PARAMETERS)
    if "_created_at" not in events.columns:
        events = events.with_columns(
            pl.lit(None, UTC_US).alias("_created_at"),
            pl.lit(None, pl.String).alias("_created_by"),
        )
    who = shown(pl.col(s.ACTOR), "an unidentified principal")
    key = shown(pl.col(s.KEY_ARN), "a key not named in the record")
    expiry = pl.coalesce(
        pl.when(request.str.json_path_match("$.validTo").is_not_null()).then(
            pl.format(", valid to {}", shown(request.str.json_path_match("$.validTo")))
        ),
        pl.when(request.str.json_path_match("$.expirationModel").is_not_null()).then(
            pl.format(", {}", shown(request.str.json_path_match("$.expirationModel")))
        ),
        pl.lit(""),
    )
    created = (
        pl.when(pl.col("_created_at").is_not_null())
        .then(
            pl.format(
                "The key was created with origin EXTERNAL by {} at {}.",
                shown(pl.col("_created_by")),
                pl.col("_created_at").dt.strftime("%Y-%m-%d %H:%M UTC"),
            )
        )
        .otherwise(pl.lit("No CreateKey for this key was seen in the history window."))
    )
    reason = (
        pl.when(pl.col(s.EVENT_NAME) == DELETE)
        .then(
            pl.format(
                "{} deleted the imported key material of {}: the key is unusable at once and "
                "data encrypted under it is lost unless the same material is imported again. {}",
                who,
                key,
                created,
            )
        )
        .otherwise(
            pl.format(
                "{} imported key material into {}{}: whoever holds a copy of that material can "
                "decrypt outside AWS, and it can be deleted without a waiting period. {}",
                who,
                key,
                expiry,
                created,
            )
        )
    )
    return per_event_findings(events, reason=reason, severity=pl.lit("high"), pattern="CHANGE")


DETECTOR = RuleDetector(
    id="KMS.ImportedKeyMaterialChanged",
    title="KMS imported key material imported or deleted",
    severity="high",
    mitre_attack=("T1486", "T1485"),
    description=(
        "Key material was imported into a KMS key (origin EXTERNAL) or deleted from it. "
        "Deleting imported material makes the key unusable immediately, with no pending "
        "window; importing material generated elsewhere lets whoever kept a copy decrypt "
        "outside AWS, which is how a 'bring your own key' ransomware attack encrypts data "
        "under a key the victim does not control."
    ),
    runbook=(
        "1. Confirm with the key owner that the import or deletion was planned (ticket, key "
        "tags, who holds the material).\n"
        "2. For an unplanned DeleteImportedKeyMaterial, re-import the same material from escrow "
        "(GetParametersForImport then ImportKeyMaterial) to restore access.\n"
        "3. For an unplanned ImportKeyMaterial, stop new encryption under the key (disable it "
        "or move aliases away) and find who generated the material.\n"
        "4. Review the actor's session for policy, grant and alias changes around the same time.\n"
        "5. Limit kms:ImportKeyMaterial and kms:DeleteImportedKeyMaterial to a key-custodian role."
    ),
    detect=detect,
    history=(CONTROL_EVENTS,),
    history_days_needed=0,
)
