"""The key policy and grant audit: every change to who may use a key, on the report day.

For each PutKeyPolicy (and CreateKey that carried a policy) the audit says who made it, when,
and what it changed against the previous known policy of that key — principals, actions and
conditions added and removed, accounts newly named, and whether the key is now open to anyone.
The parsing and the diff are :mod:`analytics.detect.detectors.policy`'s, the same the
``KMS.KeyPolicyChanged`` detector grades alerts with, so the report and the alert never disagree
about what a policy means. Grants get one row per CreateGrant / RetireGrant / RevokeGrant with
the grantee and operations (for a retire or revoke, those of the CreateGrant that made the
grant, when the lake has it).

Unlike the detector, the audit lists everything — unchanged re-applies, denied attempts,
ordinary grants to AWS services — because the question it answers is "show me every change",
not "what needs a person now".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import polars as pl

from analytics.detect.detectors.policy import Policy, account_of, diff, parse_policy
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports._records import arn_parts, json_object
from analytics.publish.reports.keyfacts import DayChange, GrantInfo, History
from analytics.publish.reports.tables import conform

_EC2_INFRASTRUCTURE = re.compile(r"^(\d{12}):aws:ec2-infrastructure:")
_SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(?:\.cn)?$")
_MAX_LISTED = 5


def allowed_principals(policy: Policy) -> set[str]:
    """Principals that Allow statements name (``everyone except X`` for NotPrincipal)."""
    return {
        str(p) if not st.not_principal else f"everyone except {p}"
        for st in policy.statements
        if st.is_allow
        for p in st.principals
    }


def allowed_actions(policy: Policy) -> set[str]:
    return {a for st in policy.statements if st.is_allow for a in st.action_labels()}


def conditions(policy: Policy) -> set[str]:
    """Every condition, prefixed by the effect of its statement (a Deny's condition fences
    callers out, an Allow's lets them in: the same text means opposite things)."""
    return {f"{st.effect} if {c}" for st in policy.statements for c in st.conditions}


def grantee_account(principal: str | None) -> str | None:
    if not principal:
        return None
    match = _EC2_INFRASTRUCTURE.match(principal)
    return match.group(1) if match else account_of(principal)


def grantee_outside(principal: str | None, inside: frozenset[str]) -> bool | None:
    """True for a grantee in an account outside ``inside``; None when no account can be read
    (a service principal, a unique ID) — the alert rules judge those, the audit records them."""
    if not principal or _SERVICE_PRINCIPAL.match(principal):
        return None
    account = grantee_account(principal)
    return None if account is None else account not in inside


def _listed(items: Iterable[str]) -> str:
    ordered = sorted(items)
    more = len(ordered) - _MAX_LISTED
    shown = ", ".join(ordered[:_MAX_LISTED])
    return f"{shown} and {more} more" if more > 0 else shown


def _base(change: DayChange, kind: str) -> dict[str, Any]:
    event = change.event
    key = change.key_arn or event[s.KEY_ARN]
    parts = arn_parts(key) if key else None
    return {
        s.EVENT_DATE: event[s.EVENT_DATE],
        s.EVENT_TIME: event[s.EVENT_TIME],
        s.EVENT_ID: event[s.EVENT_ID],
        "change_kind": kind,
        s.EVENT_NAME: event[s.EVENT_NAME],
        s.KEY_ARN: key,
        s.ACCOUNT_ID: parts[2]
        if parts
        else (event[s.KEY_ACCOUNT_ID] or event[s.RECIPIENT_ACCOUNT_ID]),
        s.AWS_REGION: event[s.AWS_REGION],
        s.ACTOR: event[s.ACTOR],
        s.PRINCIPAL_ARN: event[s.PRINCIPAL_ARN],
        s.SOURCE_IP: event[s.SOURCE_IP],
        s.USER_AGENT: event[s.USER_AGENT],
        s.ERROR_CODE: event[s.ERROR_CODE] or None,
        "succeeded": not event[s.ERROR_CODE],
    }


def _policy_row(change: DayChange, inside: frozenset[str]) -> dict[str, Any]:
    row = _base(change, r.CHANGE_POLICY)
    previous = change.previous_policy
    if previous is not None:
        row.update(previous_event_id=previous.event_id, previous_event_time=previous.event_time,
                   previous_actor=previous.actor)  # fmt: skip
    if not row["succeeded"]:
        row["summary"] = f"failed with {row[s.ERROR_CODE]}: the policy did not change"
        return row
    new = parse_policy(json_object(change.event[s.REQUEST_PARAMETERS]).get("policy"))
    old = parse_policy(previous.text) if previous is not None else None
    if old is not None and old.error is not None:
        old = None
    owner = row[s.ACCOUNT_ID]
    inside_key = inside | ({owner} if owner else set())
    change_diff = diff(old, new)
    row["policy_error"] = new.error
    if new.error is None:
        old_principals = allowed_principals(old) if old else set()
        old_actions = allowed_actions(old) if old else set()
        old_conditions = conditions(old) if old else set()
        row.update(
            principals_added=sorted(allowed_principals(new) - old_principals),
            principals_removed=sorted(old_principals - allowed_principals(new)),
            actions_added=sorted(allowed_actions(new) - old_actions),
            actions_removed=sorted(old_actions - allowed_actions(new)),
            conditions_added=sorted(conditions(new) - old_conditions),
            conditions_removed=sorted(old_conditions - conditions(new)),
            accounts_added=sorted(change_diff.accounts_added),
            accounts_removed=sorted(change_diff.accounts_removed),
            outside_accounts_added=list(change_diff.outside_accounts_added(inside_key)),
            public_actions=sorted(new.public_actions()),
        )
    if change.event[s.EVENT_NAME] == "CreateKey":
        row["summary"] = _created_summary(new, row)
    elif old is not None and not change_diff.changed:
        row["summary"] = "re-applied the policy already in force (no change)"
    else:
        row["summary"] = "; ".join(change_diff.phrases(inside_key)) or "policy replaced"
    return row


def _created_summary(new: Policy, row: dict[str, Any]) -> str:
    if new.error is not None:
        return f"key created with a policy that could not be read ({new.error})"
    parts = [f"key created with a policy allowing {_listed(allowed_principals(new)) or 'nobody'}"]
    if row.get("public_actions"):
        parts.append(f"open to anyone for {_listed(row['public_actions'])}")
    if row.get("outside_accounts_added"):
        parts.append(f"names outside account(s) {_listed(row['outside_accounts_added'])}")
    return "; ".join(parts)


def _grant_row(change: DayChange, inside: frozenset[str]) -> dict[str, Any]:
    row = _base(change, r.CHANGE_GRANT)
    grant: GrantInfo | None = change.grant
    owner = row[s.ACCOUNT_ID]
    inside_key = inside | ({owner} if owner else set())
    name = row[s.EVENT_NAME]
    if grant is not None:
        row.update(
            grant_id=None if grant.grant_id.startswith("unknown:") else grant.grant_id,
            grant_name=grant.name,
            grantee_principal=grant.grantee,
            retiring_principal=grant.retiring,
            grant_operations=grant.operations,
            grant_constraints=grant.constraints,
            grantee_outside=grantee_outside(grant.grantee, frozenset(inside_key)),
        )
    ops = _listed(grant.operations) if grant and grant.operations else "unknown operations"
    who = grant.grantee if grant and grant.grantee else "an unknown grantee"
    outside = " (an account outside the organisation)" if row.get("grantee_outside") else ""
    if not row["succeeded"]:
        row["summary"] = f"{name} failed with {row[s.ERROR_CODE]}: no grant changed"
    elif name == "CreateGrant":
        retiring = f"; retiring principal {grant.retiring}" if grant and grant.retiring else ""
        row["summary"] = f"grants {who}{outside} {ops}{retiring}"
    elif grant is None or grant.grantee is None:
        row["summary"] = (
            f"{'retired' if name == 'RetireGrant' else 'revoked'} a grant the lake has no "
            "CreateGrant for (made before its history)"
        )
    else:
        verb = "retired" if name == "RetireGrant" else "revoked"
        row["summary"] = f"{verb} the grant that gave {who}{outside} {ops}"
    return row


def build(history: History, org_accounts: Iterable[str] = ()) -> pl.DataFrame:
    """The day's policy and grant changes, in time order."""
    inside = frozenset(org_accounts)
    rows = []
    for change in history.day_changes:
        if change.grant is not None or change.event[s.EVENT_NAME] in (
            "CreateGrant", "RetireGrant", "RevokeGrant"
        ):  # fmt: skip
            rows.append(_grant_row(change, inside))
        else:
            rows.append(_policy_row(change, inside))
    rows.sort(key=lambda row: (row[s.EVENT_TIME], row[s.EVENT_ID]))
    return conform(rows, r.POLICY_CHANGES_SCHEMA)


def latest_policy_view(history: History, org_accounts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per key, what its last known policy allows: principals, outside accounts, public actions.

    Used by the inventory; kept here because it reads policies the way the audit does.
    """
    inside = frozenset(org_accounts)
    out: dict[str, dict[str, Any]] = {}
    for key, fact in history.facts.items():
        if fact.policy is None:
            continue
        policy = parse_policy(fact.policy.text)
        owner = fact.account_id
        inside_key = inside | ({owner} if owner else set())
        out[key] = {
            "policy_set_at": fact.policy.event_time,
            "policy_set_by": fact.policy.actor,
            "policy_event_id": fact.policy.event_id,
            "policy_principals": sorted(allowed_principals(policy)),
            "policy_outside_accounts": sorted(a for a in policy.accounts() if a not in inside_key),
            "policy_public_actions": sorted(policy.public_actions()),
        }
    return out
