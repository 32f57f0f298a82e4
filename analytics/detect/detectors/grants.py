"""KMS.GrantToExternalPrincipal — a grant lets a principal we cannot vouch for use a key.

Grants are the quiet side door of KMS access: they never show up in the key policy, tools that
audit policies miss them, and a single ``CreateGrant`` can let another account decrypt with a
key until someone thinks to list the key's grants. A grant is reported when its grantee (or its
retiring principal, who can also act on the grant) is

* in an account outside ``ctx.org_accounts`` and outside the key's own account, or
* something that cannot be placed in an account at all — a unique ID such as ``AROA…``, a
  bare name — because "we do not know who this is" is not safer than "an outsider".

AWS service principals (``*.amazonaws.com``) and the EC2 infrastructure grantee form
``<account>:aws:ec2-infrastructure:<id>`` are placed, not flagged. Failed calls — including
``DryRunOperationException`` probes — create no grant and are not reported here.
"""

from __future__ import annotations

import polars as pl

from analytics.detect.detectors._common import (
    KMS_SOURCE,
    from_source,
    key_account,
    per_event_findings,
    shown,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector
from analytics.lake import schema as s

CREATE_GRANT = "CreateGrant"

_ARN_ACCOUNT = r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):"
_BARE_ACCOUNT = r"^(\d{12})$"
_EC2_INFRASTRUCTURE = r"^(\d{12}):aws:ec2-infrastructure:"
_SERVICE_PRINCIPAL = r"^[a-z0-9.-]+\.amazonaws\.com(?:\.cn)?$"

OUTSIDE = "outside"
UNPLACED = "unplaced"


def principal_account(principal: pl.Expr) -> pl.Expr:
    """The 12-digit account a grant principal belongs to, when its form says so."""
    return pl.coalesce(
        principal.str.extract(_ARN_ACCOUNT, 1),
        principal.str.extract(_BARE_ACCOUNT, 1),
        principal.str.extract(_EC2_INFRASTRUCTURE, 1),
    )


def placement(principal: pl.Expr, org_accounts: frozenset[str]) -> pl.Expr:
    """``outside``, ``unplaced``, or null (inside, a service, or no principal at all)."""
    account = principal_account(principal)
    inside = account.is_in(sorted(org_accounts)) | (account == key_account())
    return (
        pl.when(principal.is_null() | (principal == ""))
        .then(pl.lit(None, pl.String))
        .when(principal.str.contains(_SERVICE_PRINCIPAL))
        .then(pl.lit(None, pl.String))
        .when(account.is_null())
        .then(pl.lit(UNPLACED))
        .when(inside)
        .then(pl.lit(None, pl.String))
        .otherwise(pl.lit(OUTSIDE))
    )


def _described(role: str, principal: pl.Expr, where: pl.Expr) -> pl.Expr:
    account = principal_account(principal)
    return (
        pl.when(where == OUTSIDE)
        .then(
            pl.format(
                "{} {} (account {}, outside the organisation)", pl.lit(role), shown(principal),
                shown(account),
            )
        )
        .when(where == UNPLACED)
        .then(
            pl.format(
                "{} {} (no account can be read from it)", pl.lit(role), shown(principal)
            )
        )
        .when(principal.is_not_null())
        .then(pl.format("{} {}", pl.lit(role), shown(principal)))
    )  # fmt: skip


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per successful CreateGrant to an outside or unplaceable principal."""
    request = pl.col(s.REQUEST_PARAMETERS)
    grants = (
        ctx.events.filter(from_source(KMS_SOURCE, (CREATE_GRANT,)), succeeded())
        .with_columns(
            request.str.json_path_match("$.granteePrincipal").alias("_grantee"),
            request.str.json_path_match("$.retiringPrincipal").alias("_retiring"),
            request.str.json_path_match("$.operations")
            .str.replace_all(r'[\[\]"]', "")
            .str.replace_all(",", ", ")
            .alias("_operations"),
            request.str.json_path_match("$.constraints").is_not_null().alias("_constrained"),
        )
        .with_columns(
            placement(pl.col("_grantee"), ctx.org_accounts).alias("_grantee_at"),
            placement(pl.col("_retiring"), ctx.org_accounts).alias("_retiring_at"),
        )
        .filter(pl.col("_grantee_at").is_not_null() | pl.col("_retiring_at").is_not_null())
    )
    parties = pl.concat_str(
        [
            _described("grantee", pl.col("_grantee"), pl.col("_grantee_at")),
            _described("retiring principal", pl.col("_retiring"), pl.col("_retiring_at")),
        ],
        separator=" and ",
        ignore_nulls=True,
    )
    constraint = (
        pl.when(pl.col("_constrained"))
        .then(pl.lit(", limited by encryption-context constraints"))
        .otherwise(pl.lit(", with no encryption-context constraint"))
    )
    reason = pl.format(
        "{} created a grant on KMS key {} for {} allowing {}{}; grants do not appear in the "
        "key policy and stay until retired or revoked.",
        shown(pl.col(s.ACTOR), "an unidentified principal"),
        shown(pl.col(s.KEY_ARN), "a key not named in the record"),
        parties,
        shown(pl.col("_operations"), "unlisted operations"),
        constraint,
    )
    baseline = pl.format(
        "inside accounts: the key's account {} and {} organisation accounts",
        shown(key_account()),
        pl.lit(len(ctx.org_accounts)),
    )
    return per_event_findings(
        grants, reason=reason, severity=pl.lit("high"), pattern="EXPOSURE", baseline=baseline
    )


DETECTOR = RuleDetector(
    id="KMS.GrantToExternalPrincipal",
    title="KMS grant to an outside or unknown principal",
    severity="high",
    mitre_attack=("T1098", "T1537"),
    description=(
        "A CreateGrant gave a principal outside the organisation and outside the key's "
        "account - or one whose account cannot be determined - the right to use a KMS key. "
        "Grants bypass the key policy review most teams do and persist until retired or "
        "revoked, so they are a favoured way to keep decrypt access to data."
    ),
    runbook=(
        "1. List the key's grants: `aws kms list-grants --key-id <key>` and find the grant ID "
        "from the event's responseElements.grantId.\n"
        "2. Ask the actor's owner why the grantee needs the operations listed; check the "
        "grantee account against the partner/vendor inventory.\n"
        "3. If unexpected, revoke it: `aws kms revoke-grant --key-id <key> --grant-id <id>`.\n"
        "4. Search the lake for calls by the grantee's account on this key since the grant "
        "(KMS.NewCrossAccountCaller findings) and assess what it could decrypt.\n"
        "5. Restrict kms:CreateGrant with kms:GrantIsForAWSResource or kms:GranteePrincipal "
        "conditions in the key policy."
    ),
    detect=detect,
    history_days_needed=0,
)
