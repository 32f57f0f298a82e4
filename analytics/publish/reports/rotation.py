"""The key rotation report: for every key seen, is it rotating, when did it last rotate, when is
it due, and is it late — or can it not rotate automatically at all?

Rotation is a compliance control (CIS AWS Foundations 3.6, PCI DSS 3.6.4) and auditors ask for
the list. The rules it follows (reference §3.10):

* Automatic rotation exists only for symmetric keys with KMS-generated material outside custom
  key stores. Asymmetric, HMAC, imported-material and custom-store keys are reported as
  NOT_APPLICABLE with the reason — a fact about the key, not a failure of its owner.
* AWS managed keys rotate every year and nobody can change that: AWS_MANAGED.
* A customer key's state comes from EnableKeyRotation (``rotationPeriodInDays``, default 365) and
  DisableKeyRotation; an automatic RotateKey service event proves rotation is on even when the
  enabling call predates the lake. Rotations are RotateKey events (both ``serviceEventDetails``
  forms: the 2021 ``{keyId}`` one is always automatic, the 2025 one says AUTOMATIC or ON_DEMAND)
  and RotateKeyOnDemand calls. On-demand rotations do not move the automatic schedule, so the
  next due date is the period after the later of the last automatic rotation and the moment
  rotation was (re-)enabled.
* With ``--inventory`` the KMS API's answer (GetKeyRotationStatus's NextRotationDate, the rotation
  list) wins over the inference from history.
* A key is OVERDUE when it is enabled and its due date is more than
  :data:`OVERDUE_GRACE_DAYS` behind the report day (CloudTrail delivery and KMS's own scheduling
  both lag a little). KMS does not rotate disabled or pending-deletion keys, so those are never
  overdue; they are listed with their state.
* A key the lake holds no rotation fact about is UNKNOWN, and the row says what is missing
  (:data:`UNKNOWN_REASONS`): a reader can act on "this account's trail is not collected" or "this
  key predates the lake", not on a column of dashes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analytics.adapters.kms_inventory import KeySnapshot
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports.keyfacts import (
    DEFAULT_ROTATION_PERIOD_DAYS,
    History,
    KeyFacts,
    custom_store,
    key_manager,
    spec_class,
)
from analytics.publish.reports.tables import conform

OVERDUE_GRACE_DAYS = 2
_NOT_ROTATING_STATES = frozenset({"Disabled", "PendingDeletion", "PendingImport",
                                  "PendingReplicaDeletion", "Unavailable"})  # fmt: skip
_STATUS_RANK = {status: rank for rank, status in enumerate(r.ROTATION_STATUSES)}
_ROTATION_FACTS = "no EnableKeyRotation, DisableKeyRotation or automatic RotateKey event"

UNKNOWN_OTHER_ACCOUNT = (
    "only used here: the lake holds no KMS management event of the key's account at all "
    "(its own trail is not collected), so " + _ROTATION_FACTS + " can be seen"
)
UNKNOWN_TYPE = (
    "only used in the lake's history, in calls that do not show its key type: no CreateKey "
    "and " + _ROTATION_FACTS + ", so whether it can rotate at all is unknown"
)
UNKNOWN_PREDATES = (
    "only used in the lake's history: created before it, and " + _ROTATION_FACTS + " since"
)
UNKNOWN_MANAGED = "changed in the lake's history, but " + _ROTATION_FACTS + " among the changes"
UNKNOWN_REASONS: tuple[str, ...] = (
    UNKNOWN_OTHER_ACCOUNT, UNKNOWN_TYPE, UNKNOWN_PREDATES, UNKNOWN_MANAGED,
)  # fmt: skip
"""Why a key's rotation is UNKNOWN, derived from what the lake holds about it; the fix for all
of them is the KMS API's answer (``--inventory``)."""


@dataclass(frozen=True)
class _Merged:
    """A key's facts with the KMS API's answers laid over the history's."""

    key_arn: str
    manager: str | None
    spec: str | None
    spec_class: str | None
    origin: str | None
    store: str | None
    state: str | None
    deletion_date: dt.datetime | None
    aliases: list[str]


def not_applicable_reason(
    spec_cls: str | None, origin: str | None, store: str | None
) -> str | None:
    """Why a key cannot rotate automatically, or None when it can (or nothing says it cannot)."""
    if spec_cls == "asymmetric":
        return "asymmetric key: automatic rotation is not supported; rotate by moving to a new key"
    if spec_cls == "hmac":
        return "HMAC key: automatic rotation is not supported; rotate by moving to a new key"
    if origin == "EXTERNAL":
        return "imported key material: automatic rotation is not supported; rotate on demand"
    if store or origin in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        return "key in a custom key store: automatic rotation is not supported; rotate manually"
    return None


def unknown_reason(fact: KeyFacts, spec_cls: str | None, managed_accounts: frozenset[str]) -> str:
    """What the lake lacks to say whether ``fact``'s key rotates (for an UNKNOWN row)."""
    if fact.events_seen:
        return UNKNOWN_MANAGED
    if fact.account_id is not None and fact.account_id not in managed_accounts:
        return UNKNOWN_OTHER_ACCOUNT
    return UNKNOWN_TYPE if spec_cls is None else UNKNOWN_PREDATES


def _merge(fact: KeyFacts, snap: KeySnapshot | None, aliases: Sequence[str]) -> _Merged:
    spec = (snap.key_spec if snap else None) or fact.key_spec
    if spec is None:
        spec_cls = spec_class(fact)  # inferred from use, when nothing states the spec
    elif spec == "SYMMETRIC_DEFAULT":
        spec_cls = "symmetric"
    else:
        spec_cls = "hmac" if spec.startswith("HMAC_") else "asymmetric"
    state = (snap.key_state if snap else None) or fact.key_state
    deletion = (snap.deletion_date if snap else None) or fact.deletion_date
    names = set(aliases) | set(snap.aliases if snap else ())
    if fact.traits and fact.traits.aws_alias:
        names.add(fact.traits.aws_alias)
    return _Merged(
        key_arn=fact.key_arn,
        manager=(snap.key_manager if snap else None) or key_manager(fact),
        spec=spec,
        spec_class=spec_cls,
        origin=(snap.origin if snap else None) or fact.origin,
        store=(snap.custom_key_store_id if snap else None) or custom_store(fact),
        state=state,
        deletion_date=deletion if state == "PendingDeletion" else None,
        aliases=sorted(names),
    )


def _latest(*values: dt.datetime | None) -> dt.datetime | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _row(fact: KeyFacts, snap: KeySnapshot | None, merged: _Merged, day: dt.date,
         managed_accounts: frozenset[str] = frozenset()) -> dict[str, Any]:  # fmt: skip
    notes: list[str] = []
    unknown: str | None = None
    reason = not_applicable_reason(merged.spec_class, merged.origin, merged.store)
    api_knows = snap is not None and snap.rotation_enabled is not None
    enabled: bool | None = snap.rotation_enabled if api_knows and snap else fact.rotation_enabled
    period = (snap.rotation_period_days if snap else None) or fact.rotation_period_days
    last_at = _latest(fact.last_rotation_at, snap.last_rotation_date if snap else None)
    if snap and snap.last_rotation_date and snap.last_rotation_date == last_at:
        last_type = snap.last_rotation_type
    else:
        last_type = fact.last_rotation_type
    source = "kms-api" if api_knows else "cloudtrail"
    if not api_knows and fact.rotation_enabled is None and last_at is None:
        # An AWS managed key is known to rotate from what CloudTrail shows (an alias/aws/…
        # reference); anything else has no rotation fact at all.
        source = "cloudtrail" if key_manager(fact) == "AWS" else "none"
    if snap is not None and snap.error:
        notes.append(f"KMS API: {snap.error}")
    due: dt.date | None = None
    if merged.state == "Deleted":
        status = "DELETED"
        enabled = None
    elif merged.manager == "AWS":
        status = "AWS_MANAGED"
        enabled, period = True, DEFAULT_ROTATION_PERIOD_DAYS
        automatic = _latest(fact.last_automatic_rotation_at,
                            snap.last_rotation_date if snap else None)  # fmt: skip
        if snap and snap.next_rotation_date:
            due = snap.next_rotation_date.date()
        elif automatic:
            due = (automatic + dt.timedelta(days=DEFAULT_ROTATION_PERIOD_DAYS)).date()
        notes.append("AWS managed key: KMS rotates it every year; the period cannot be changed")
    elif reason is not None:
        status = "NOT_APPLICABLE"
        enabled = None if enabled is False else enabled
    elif enabled is True:
        status = "ENABLED"
        if snap and snap.next_rotation_date:
            due = snap.next_rotation_date.date()
        else:
            anchor = _latest(fact.last_automatic_rotation_at, fact.rotation_enabled_since)
            if period is None:
                notes.append(f"rotation period not seen in the lake; assumed the default "
                             f"{DEFAULT_ROTATION_PERIOD_DAYS} days")  # fmt: skip
            if anchor is not None:
                due = (anchor + dt.timedelta(days=period or DEFAULT_ROTATION_PERIOD_DAYS)).date()
            else:
                notes.append("rotation was enabled before the lake's history; next date unknown "
                             "(run the report with --inventory)")  # fmt: skip
    elif enabled is False:
        status = "DISABLED"
    else:
        status = "UNKNOWN"
        unknown = unknown_reason(fact, merged.spec_class, managed_accounts)
        if fact.events_seen:
            notes.append("events seen: " + ", ".join(sorted(fact.events_seen)))
        notes.append("no rotation setting in the lake's history (run the report with --inventory)")
    overdue: bool | None = None
    days_overdue: int | None = None
    if due is not None and status in ("ENABLED", "AWS_MANAGED"):
        if merged.state in _NOT_ROTATING_STATES:
            overdue = False
            notes.append(f"KMS does not rotate a key in state {merged.state}")
        else:
            late = (day - due).days
            overdue = late > OVERDUE_GRACE_DAYS
            days_overdue = late if overdue else None
            if overdue and status == "ENABLED":
                status = "OVERDUE"
    if merged.state == "PendingDeletion" and merged.deletion_date is not None:
        notes.append(f"scheduled for deletion on {merged.deletion_date:%Y-%m-%d}")
    return {
        s.EVENT_DATE: day,
        s.KEY_ARN: fact.key_arn,
        s.ACCOUNT_ID: fact.account_id,
        s.AWS_REGION: fact.region,
        r.ALIASES: merged.aliases,
        r.KEY_MANAGER: merged.manager,
        r.KEY_SPEC: merged.spec,
        r.ORIGIN: merged.origin,
        r.CUSTOM_KEY_STORE_ID: merged.store,
        r.KEY_STATE: merged.state,
        r.PENDING_DELETION: merged.state == "PendingDeletion",
        r.DELETION_DATE: merged.deletion_date,
        r.ROTATION_STATUS: status,
        "automatic_rotation_possible": (
            False
            if reason is not None or merged.manager == "AWS"
            else True
            if merged.spec_class == "symmetric"
            else None
        ),
        "not_applicable_reason": reason if status == "NOT_APPLICABLE" else None,
        "unknown_reason": unknown,
        r.ROTATION_ENABLED: enabled,
        "rotation_period_days": period if status != "NOT_APPLICABLE" else None,
        "rotation_source": source,
        "rotation_changed_at": fact.rotation_changed_at,
        "rotation_changed_by": fact.rotation_changed_by,
        "last_rotation_at": last_at,
        "last_rotation_type": last_type,
        "automatic_rotations_seen": fact.automatic_rotations,
        "on_demand_rotations_seen": fact.on_demand_rotations,
        r.NEXT_ROTATION_DUE: due,
        r.OVERDUE: overdue,
        "days_overdue": days_overdue,
        "note": "; ".join(notes) or None,
    }


def build(history: History, day: dt.date, snapshots: Sequence[KeySnapshot] = ()) -> pl.DataFrame:
    """The rotation report of ``day``: one row per key, most urgent status first."""
    by_arn: Mapping[str, KeySnapshot] = {snap.key_arn: snap for snap in snapshots}
    facts = dict(history.facts)
    for arn in by_arn:
        facts.setdefault(arn, KeyFacts(arn))
    rows = []
    for arn, fact in sorted(facts.items()):
        snap = by_arn.get(arn)
        merged = _merge(fact, snap, history.aliases.get(arn, []))
        rows.append(_row(fact, snap, merged, day, history.managed_accounts))
    rows.sort(key=lambda row: (_STATUS_RANK[row[r.ROTATION_STATUS]], row[s.KEY_ARN]))
    return conform(rows, r.ROTATION_SCHEMA)
