"""The key inventory: every key seen, with the facts an auditor's "key management policy
documentation" request asks for.

One row per key the lake has seen up to the report day (and, with ``--inventory``, every key the
KMS API lists): its aliases, account and region, first and last use, who its last known key
policy lets in and which of those are outside the organisation, its grants, its rotation state
and whether it is being deleted. It is assembled from the other reports' building blocks — the
key facts walk, the rotation rows, the policy reading of the audit — so the documents agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from analytics.adapters.kms_inventory import KeySnapshot
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports.keyfacts import History, KeyFacts
from analytics.publish.reports.policy_audit import grantee_outside, latest_policy_view
from analytics.publish.reports.tables import conform


def build(
    history: History,
    rotation: pl.DataFrame,
    day: dt.date,
    key_usage: pl.DataFrame | None = None,
    alerts: pl.DataFrame | None = None,
    org_accounts: Iterable[str] = (),
    snapshots: Sequence[KeySnapshot] = (),
) -> pl.DataFrame:
    """One row per key (see :data:`analytics.publish.reports.schemas.KEYS_SCHEMA`), by key ARN."""
    inside = frozenset(org_accounts)
    policies = latest_policy_view(history, inside)
    calls = _per_key(key_usage, r.CALLS)
    alert_counts: dict[str, int] = {}
    if alerts is not None and not alerts.is_empty():
        active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null() & pl.col(s.KEY_ARN).is_not_null())
        for key, count in active.group_by(s.KEY_ARN).len().iter_rows():
            alert_counts[key] = int(count)
    from_api = {snap.key_arn for snap in snapshots}
    rows: list[dict[str, Any]] = []
    for rot in rotation.sort(s.KEY_ARN).iter_rows(named=True):
        key = rot[s.KEY_ARN]
        fact = history.facts.get(key) or KeyFacts(key)
        traits = fact.traits
        owner = fact.account_id
        inside_key = inside | ({owner} if owner else set())
        grants = fact.active_grants()
        grantees = sorted({g.grantee for g in grants if g.grantee})
        in_lake = key in history.facts
        row: dict[str, Any] = {
            s.EVENT_DATE: day,
            s.KEY_ARN: key,
            r.KEY_ID: fact.key_id,
            s.ACCOUNT_ID: rot[s.ACCOUNT_ID],
            s.AWS_REGION: rot[s.AWS_REGION],
            r.ALIASES: rot[r.ALIASES],
            r.KEY_MANAGER: rot[r.KEY_MANAGER],
            r.KEY_SPEC: rot[r.KEY_SPEC],
            r.ORIGIN: rot[r.ORIGIN],
            r.KEY_STATE: rot[r.KEY_STATE],
            r.PENDING_DELETION: rot[r.PENDING_DELETION],
            r.DELETION_DATE: rot[r.DELETION_DATE],
            "first_seen": _earliest(traits.first_seen if traits else None, fact.created_at),
            "last_seen": traits.last_seen if traits else None,
            "last_used": traits.last_used if traits else None,
            "calls_on_day": calls.get(key, 0),
            r.ROTATION_STATUS: rot[r.ROTATION_STATUS],
            r.ROTATION_ENABLED: rot[r.ROTATION_ENABLED],
            r.NEXT_ROTATION_DUE: rot[r.NEXT_ROTATION_DUE],
            "policy_known": key in policies,
            "active_grants": len(grants),
            "grantees": grantees,
            "outside_grantees": [
                g for g in grantees if grantee_outside(g, frozenset(inside_key)) is True
            ],
            "alerts_on_day": alert_counts.get(key, 0),
            "source": "+".join(
                name for name, present in (("cloudtrail", in_lake), ("kms-api", key in from_api))
                if present
            ) or "cloudtrail",
        }  # fmt: skip
        row.update(policies.get(key, {}))
        rows.append(row)
    return conform(rows, r.KEYS_SCHEMA)


def _earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _per_key(frame: pl.DataFrame | None, column: str) -> dict[str, int]:
    if frame is None or frame.is_empty():
        return {}
    return {key: int(value) for key, value in frame.select(s.KEY_ARN, column).iter_rows()}
