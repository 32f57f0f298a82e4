"""KMS.KeyPolicyChanged — a key policy was replaced; say what it now allows that it did not.

The key policy is the root of access to a KMS key: one ``PutKeyPolicy`` can hand every AWS
account on earth ``kms:Decrypt``. A bare "policy changed" alert is what peer tools ship and what
people learn to ignore, so this rule diffs the new policy against the last one it knows for the
key — the latest ``PutKeyPolicy``/``CreateKey`` in the history, or an earlier one the same day —
and grades the finding by what the diff means:

* an ``Allow`` to a wildcard principal with no condition pinning the caller, not fenced by a
  ``Deny`` → **critical**, EXPOSURE (Panther's ``AWS.CloudTrail.ResourceMadePublic`` question);
* a new account outside the organisation and outside the key's own account → **high**,
  EXPOSURE;
* otherwise a real change → **medium** when someone gains access, **low** when access only
  shrank, conditions changed, or no earlier policy is known to say which it was.

A ``PutKeyPolicy`` that re-applies the known policy unchanged is not a finding, and neither is a
``CreateKey`` whose policy neither opens the key to everyone nor names outside accounts: those
are everyday infrastructure-as-code events, and the reports issue lists them anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from analytics.detect.detectors._common import (
    CONTROL_EVENTS,
    KMS_SOURCE,
    clip_text,
    from_source,
    history_of,
    key_account,
    per_event_findings,
    succeeded,
)
from analytics.detect.detectors.base import DetectionContext, RuleDetector, empty_findings
from analytics.detect.detectors.policy import Policy, PolicyDiff, diff, parse_policy
from analytics.lake import schema as s

PUT = "PutKeyPolicy"
CREATE = "CreateKey"

_KEY = "_policy_key"
_POLICY = "_policy_text"
_IS_DAY = "_is_day"
_PREV = "_prev_"
_TIMELINE = [_KEY, s.EVENT_TIME, s.EVENT_ID, s.EVENT_NAME, s.ACTOR, _POLICY]


def _policy_event() -> pl.Expr:
    return (
        from_source(KMS_SOURCE, (PUT, CREATE))
        & succeeded()
        & pl.col(s.REQUEST_PARAMETERS).str.json_path_match("$.policy").is_not_null()
    )


def _with_policy(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add the key the policy belongs to and the policy text (object or string form)."""
    return frame.with_columns(
        pl.coalesce(
            pl.col(s.KEY_ARN),
            pl.col(s.RESPONSE_ELEMENTS).str.json_path_match("$.keyMetadata.arn"),
        ).alias(_KEY),
        pl.col(s.REQUEST_PARAMETERS).str.json_path_match("$.policy").alias(_POLICY),
    )


def _timeline(ctx: DetectionContext, day: pl.DataFrame) -> pl.DataFrame:
    """The day's policy events, each with the policy event that preceded it for its key."""
    keys = day.get_column(_KEY).drop_nulls().unique()
    history_columns = [s.EVENT_ID, s.EVENT_TIME, s.EVENT_SOURCE, s.EVENT_NAME, s.ERROR_CODE,
                       s.ACTOR, s.KEY_ARN, s.REQUEST_PARAMETERS, s.RESPONSE_ELEMENTS]  # fmt: skip
    last_known = (
        history_of(ctx, CONTROL_EVENTS, _policy_event(), history_columns)
        .pipe(_with_policy)
        .filter(pl.col(_KEY).is_in(keys.implode()))
        .group_by(_KEY)
        .agg(pl.all().sort_by(s.EVENT_TIME, s.EVENT_ID).last())
        .select(_TIMELINE)
        .collect()
    )
    timeline = pl.concat(
        [
            last_known.with_columns(pl.lit(False).alias(_IS_DAY)),
            day.with_columns(pl.lit(True).alias(_IS_DAY)),
        ],
        how="diagonal_relaxed",
    ).sort(_KEY, s.EVENT_TIME, s.EVENT_ID, nulls_last=True)
    has_key = pl.col(_KEY).is_not_null()
    previous = [
        pl.when(has_key).then(pl.col(name).shift(1).over(_KEY)).alias(_PREV + name)
        for name in (s.EVENT_TIME, s.EVENT_NAME, s.ACTOR, _POLICY)
    ]
    return timeline.with_columns(previous).filter(pl.col(_IS_DAY))


@dataclass(frozen=True)
class _Assessment:
    reason: str | None
    severity: str | None
    pattern: str | None
    baseline: str | None


_NOTHING = _Assessment(None, None, None, None)


def _assess(row: dict[str, Any], org_accounts: frozenset[str], history_days: int) -> _Assessment:
    """Grade one policy event against the policy before it (the helper loop's body)."""
    new = parse_policy(row[_POLICY])
    old_text = row[_PREV + _POLICY]
    old: Policy | None = parse_policy(old_text) if old_text is not None else None
    if old is not None and old.error is not None:
        old = None  # an unreadable earlier policy is as good as an unknown one
    change = diff(old, new)
    owner = row["_owner"]
    inside = org_accounts | ({owner} if owner else set())
    outside = change.outside_accounts_added(inside)
    created = row[s.EVENT_NAME] == CREATE
    if new.is_public:
        severity, pattern = "critical", "EXPOSURE"
    elif outside:
        severity, pattern = "high", "EXPOSURE"
    elif created or not change.changed:
        return _NOTHING
    elif old is None or not change.widened:
        severity, pattern = "low", "CHANGE"
    else:
        severity, pattern = "medium", "CHANGE"
    who = clip_text(row[s.ACTOR] or "an unidentified principal")
    key = clip_text(row[_KEY] or "a key not named in the record")
    what = "; ".join(clip_text(p, 300) for p in _phrases(change, inside, created))
    if created:
        reason = f"{who} created KMS key {key} with a policy that {what}."
    else:
        reason = f"{who} changed the key policy of {key}: {what}."
    if old is None:
        baseline = f"no earlier policy of this key in the last {history_days} days or today"
    else:
        when = row[_PREV + s.EVENT_TIME]
        baseline = (
            f"previous policy set by {row[_PREV + s.EVENT_NAME]} of "
            f"{clip_text(row[_PREV + s.ACTOR] or 'an unidentified principal')} "
            f"at {when:%Y-%m-%d %H:%M} UTC"
        )
    return _Assessment(reason, severity, pattern, baseline)


def _phrases(change: PolicyDiff, inside: frozenset[str] | set[str], created: bool) -> list[str]:
    if not created:
        return change.phrases(inside)
    out = []
    if change.public_added:
        out.append(f"allows * to {', '.join(sorted(change.public_added))}")
    outside = change.outside_accounts_added(inside)
    if outside:
        out.append(f"names outside account(s) {', '.join(outside)}")
    return out


def detect(ctx: DetectionContext) -> pl.DataFrame:
    """One finding per policy event whose diff is worth a person's attention."""
    day = ctx.events.lazy().filter(_policy_event()).pipe(_with_policy).collect()
    if day.is_empty():
        return empty_findings()
    rows = _timeline(ctx, day).with_columns(key_account().alias("_owner"))
    assessed = [
        _assess(row, ctx.org_accounts, ctx.history_days)
        for row in rows.select(
            _KEY, _POLICY, s.EVENT_NAME, s.ACTOR, "_owner",
            *(pl.col(_PREV + c) for c in (s.EVENT_TIME, s.EVENT_NAME, s.ACTOR, _POLICY)),
        ).iter_rows(named=True)
    ]  # fmt: skip
    graded = rows.with_columns(
        pl.Series("_reason", [a.reason for a in assessed], pl.String),
        pl.Series("_severity", [a.severity for a in assessed], pl.String),
        pl.Series("_pattern", [a.pattern for a in assessed], pl.String),
        pl.Series("_baseline", [a.baseline for a in assessed], pl.String),
    ).filter(pl.col("_reason").is_not_null())
    return pl.concat(
        [
            per_event_findings(
                graded.filter(pl.col("_pattern") == pattern),
                reason=pl.col("_reason"),
                severity=pl.col("_severity"),
                pattern=pattern,
                baseline=pl.col("_baseline"),
                key_arn=pl.col(_KEY),
            )
            for pattern in ("EXPOSURE", "CHANGE")
        ]
    ).sort(s.WINDOW_START)


DETECTOR = RuleDetector(
    id="KMS.KeyPolicyChanged",
    title="KMS key policy changed",
    severity="high",
    mitre_attack=("T1098", "T1537"),
    description=(
        "A key policy was replaced (PutKeyPolicy) or a key was created with a policy that "
        "opens it up. The new policy is compared with the last one known for the key: a "
        "wildcard principal without a condition that pins the caller is critical (anyone can "
        "use the key), a newly named account outside the organisation is high, any other "
        "change is medium when someone gains access and low otherwise."
    ),
    runbook=(
        "1. Read the diff in the reason and fetch the live policy: "
        "`aws kms get-key-policy --key-id <key> --policy-name default`.\n"
        "2. If the change is not in a reviewed change (IaC commit, ticket), restore the previous "
        "policy with `aws kms put-key-policy` from the lake's earlier PutKeyPolicy event.\n"
        "3. For EXPOSURE findings, list who used the key since the change (lake: Decrypt and "
        "GenerateDataKey by principal_account_id outside the organisation) and rotate any data "
        "keys or secrets they could have decrypted.\n"
        "4. Check the actor's other recent calls (grants, aliases, trail changes) for a wider "
        "intrusion and revoke its sessions if needed.\n"
        "5. Guard with an SCP denying kms:PutKeyPolicy outside the deployment role, and an "
        "aws:PrincipalOrgID condition on every wildcard statement."
    ),
    detect=detect,
    history=(CONTROL_EVENTS,),
    history_days_needed=0,
)
