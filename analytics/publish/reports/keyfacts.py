"""What the lake knows about each key: a walk over its configuration history.

The rotation report, the policy and grant audit and the key inventory all ask questions about a
key *as of* some moment — is rotation on, which policy was in force before this PutKeyPolicy,
whom did this grant name — and the answers are a fold over the key's management events in time
order. :func:`walk` does that fold once, over every management event up to the report day, and
records along the way the state each of the day's policy and grant events replaced, so the audit
can diff against "the previous known version" without a second pass.

Only successful calls change state (a denied PutKeyPolicy changed nothing); failed calls of the
report day are still handed to the audit, because an auditor wants the attempts too.

Facts that cannot be read from management events are inferred from use (:class:`KeyTraits`):
a key that served ``Sign`` is asymmetric, ``GenerateMac`` means HMAC, ``GenerateDataKey`` means
symmetric, a reference to ``alias/aws/…`` means an AWS managed key. An inference is only a
fallback: a ``CreateKey`` response or the KMS API says it better.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from analytics.lake import schema as s
from analytics.publish.reports._records import (
    arn_parts,
    is_key_arn,
    json_object,
    key_arn_from,
    key_id_of,
    parse_time,
    string_at,
    strings_at,
)

DEFAULT_ROTATION_PERIOD_DAYS = 365
DEFAULT_PENDING_WINDOW_DAYS = 30

# Whoever may change these on a key is its customer: KMS refuses them on AWS managed keys.
_CUSTOMER_ONLY = frozenset(
    {"CreateKey", "PutKeyPolicy", "EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand",
     "ScheduleKeyDeletion", "CancelKeyDeletion", "DisableKey", "EnableKey", "ImportKeyMaterial",
     "CreateAlias", "UpdateAlias"}
)  # fmt: skip

WALK_COLUMNS: tuple[str, ...] = (
    s.EVENT_ID, s.EVENT_TIME, s.EVENT_DATE, s.EVENT_SOURCE, s.EVENT_NAME, s.ERROR_CODE, s.ACTOR,
    s.PRINCIPAL_ARN, s.SOURCE_IP, s.USER_AGENT, s.AWS_REGION, s.RECIPIENT_ACCOUNT_ID,
    s.PRINCIPAL_ACCOUNT_ID, s.KEY_ARN, s.KEY_ACCOUNT_ID, s.REQUEST_PARAMETERS,
    s.RESPONSE_ELEMENTS, s.SERVICE_EVENT_DETAILS, s.ADDITIONAL_EVENT_DATA,
)  # fmt: skip
"""The event columns :func:`walk` reads."""


@dataclass(frozen=True)
class KeyTraits:
    """What a key's *use* says about it (aggregated over all its events up to the day)."""

    key_arn: str
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    last_used: dt.datetime | None = None
    asymmetric_ops: bool = False
    hmac_ops: bool = False
    symmetric_ops: bool = False
    aws_alias: str | None = None
    custom_key_store_id: str | None = None


@dataclass(frozen=True)
class PolicyVersion:
    """A key policy that took effect: the event that set it and its text."""

    event_id: str
    event_time: dt.datetime
    event_name: str
    actor: str | None
    text: str


@dataclass
class GrantInfo:
    grant_id: str
    key_arn: str | None
    grantee: str | None
    retiring: str | None
    operations: list[str]
    name: str | None
    constraints: str | None
    created_at: dt.datetime
    created_by: str | None
    ended: str | None = None  # "RetireGrant" / "RevokeGrant" when it was ended


@dataclass
class KeyFacts:
    """A key as its history up to the report day describes it. None means "not known"."""

    key_arn: str
    key_manager: str | None = None
    key_spec: str | None = None
    key_usage: str | None = None
    origin: str | None = None
    custom_key_store_id: str | None = None
    multi_region: bool | None = None
    created_at: dt.datetime | None = None
    key_state: str | None = None
    deletion_date: dt.datetime | None = None
    rotation_enabled: bool | None = None
    rotation_period_days: int | None = None
    rotation_enabled_since: dt.datetime | None = None
    rotation_changed_at: dt.datetime | None = None
    rotation_changed_by: str | None = None
    last_rotation_at: dt.datetime | None = None
    last_rotation_type: str | None = None
    last_automatic_rotation_at: dt.datetime | None = None
    automatic_rotations: int = 0
    on_demand_rotations: int = 0
    policy: PolicyVersion | None = None
    grants: dict[str, GrantInfo] = field(default_factory=dict)
    traits: KeyTraits | None = None
    events_seen: set[str] = field(default_factory=set)
    """Names of the successful management events about this key (an empty set: only used)."""

    @property
    def account_id(self) -> str | None:
        parts = arn_parts(self.key_arn)
        return parts[2] if parts else None

    @property
    def region(self) -> str | None:
        parts = arn_parts(self.key_arn)
        return parts[1] if parts else None

    @property
    def key_id(self) -> str | None:
        return key_id_of(self.key_arn)

    def active_grants(self) -> list[GrantInfo]:
        return sorted(
            (g for g in self.grants.values() if g.ended is None),
            key=lambda g: (g.created_at, g.grant_id),
        )


@dataclass(frozen=True)
class DayChange:
    """A policy or grant event of the report day with the state it found."""

    event: dict[str, Any]
    key_arn: str | None
    previous_policy: PolicyVersion | None = None
    grant: GrantInfo | None = None


@dataclass
class History:
    facts: dict[str, KeyFacts]
    aliases: dict[str, list[str]]
    day_changes: list[DayChange]
    managed_accounts: frozenset[str] = frozenset()
    """Accounts the lake holds any KMS management event of: a key of another account is only
    ever seen in use, because its own trail is not collected here."""


def traits_from(activity: pl.DataFrame) -> dict[str, KeyTraits]:
    """Per-key traits from the frame :func:`analytics.publish.reports.inputs.key_activity`
    builds."""
    out: dict[str, KeyTraits] = {}
    for row in activity.iter_rows(named=True):
        key = row[s.KEY_ARN]
        if not is_key_arn(key):
            continue
        out[key] = KeyTraits(
            key_arn=key,
            first_seen=row.get("first_seen"),
            last_seen=row.get("last_seen"),
            last_used=row.get("last_used"),
            asymmetric_ops=bool(row.get("asymmetric_ops")),
            hmac_ops=bool(row.get("hmac_ops")),
            symmetric_ops=bool(row.get("symmetric_ops")),
            aws_alias=row.get("aws_alias"),
            custom_key_store_id=row.get("custom_key_store_id"),
        )
    return out


class _Walker:
    def __init__(self, day: dt.date, traits: Mapping[str, KeyTraits]) -> None:
        self.day = day
        self.facts: dict[str, KeyFacts] = {}
        self.alias_targets: dict[tuple[str, str, str], str] = {}
        self.grants: dict[str, GrantInfo] = {}
        self.day_changes: list[DayChange] = []
        for key, trait in traits.items():
            self.fact(key).traits = trait
            if trait.aws_alias:
                parts = arn_parts(key)
                if parts:
                    self.alias_targets[(parts[2], parts[1], trait.aws_alias)] = key

    def fact(self, key: str) -> KeyFacts:
        found = self.facts.get(key)
        if found is None:
            found = self.facts[key] = KeyFacts(key)
        return found

    # -- resolving which key an event is about ------------------------------------------------

    def key_of(self, row: Mapping[str, Any], request: Mapping[str, Any],
               response: Mapping[str, Any], details: Mapping[str, Any]) -> str | None:  # fmt: skip
        key = row[s.KEY_ARN]
        if is_key_arn(key):
            return str(key)
        region = row[s.AWS_REGION]
        account = row[s.KEY_ACCOUNT_ID] or row[s.RECIPIENT_ACCOUNT_ID]
        for candidate in (
            string_at(response, "keyMetadata", "arn"),
            string_at(response, "keyId"),
            string_at(details, "keyId"),
            string_at(request, "keyId"),
        ):
            resolved = key_arn_from(candidate, region, account)
            if resolved:
                return resolved
        # An alias reference the lake could not resolve: use the mapping known at this moment.
        reference = string_at(request, "keyId") or (key if isinstance(key, str) else None)
        if reference and account and region:
            name = reference.split(":alias/", 1)[-1]
            name = name if name.startswith("alias/") else f"alias/{name}"
            return self.alias_targets.get((account, region, name))
        return None

    # -- the fold ---------------------------------------------------------------------------

    def step(self, row: dict[str, Any]) -> None:
        name = row[s.EVENT_NAME]
        request = json_object(row[s.REQUEST_PARAMETERS])
        response = json_object(row[s.RESPONSE_ELEMENTS])
        details = json_object(row[s.SERVICE_EVENT_DETAILS])
        ok = not row[s.ERROR_CODE]
        on_day = row[s.EVENT_DATE] == self.day
        when: dt.datetime = row[s.EVENT_TIME]
        if name in ("CreateAlias", "UpdateAlias", "DeleteAlias"):
            if ok:
                self.alias(row, name, request)
            return
        key = self.key_of(row, request, response, details)
        if name in ("PutKeyPolicy", "CreateKey"):
            policy_text = request.get("policy")
            if on_day and policy_text is not None:
                previous = self.facts[key].policy if key in self.facts else None
                self.day_changes.append(DayChange(row, key, previous_policy=previous))
        if name in ("CreateGrant", "RetireGrant", "RevokeGrant"):
            self.grant(row, name, key, request, response, ok, on_day)
            return
        if key is None or not ok:
            return
        fact = self.fact(key)
        fact.events_seen.add(name)
        if name in _CUSTOMER_ONLY and fact.key_manager is None:
            fact.key_manager = "CUSTOMER"
        if name == "CreateKey":
            self.create(fact, row, request, response)
        elif name == "PutKeyPolicy":
            text = request.get("policy")
            if text is not None:
                fact.policy = _version(row, text)
        elif name in ("EnableKeyRotation", "DisableKeyRotation"):
            self.rotation_setting(fact, name, request, when, row[s.ACTOR])
        elif name in ("RotateKey", "RotateKeyOnDemand"):
            self.rotated(fact, name, details, when)
        else:
            self.lifecycle(fact, name, request, response, when)

    def alias(self, row: Mapping[str, Any], name: str, request: Mapping[str, Any]) -> None:
        alias_name = string_at(request, "aliasName")
        account = row[s.RECIPIENT_ACCOUNT_ID]
        region = row[s.AWS_REGION]
        if not alias_name or not account or not region:
            return
        slot = (account, region, alias_name)
        if name == "DeleteAlias":
            self.alias_targets.pop(slot, None)
            return
        target = key_arn_from(string_at(request, "targetKeyId"), region, account)
        if target is None and is_key_arn(row[s.KEY_ARN]):
            target = row[s.KEY_ARN]
        if target:
            self.alias_targets[slot] = target
            fact = self.fact(target)
            fact.events_seen.add(name)
            fact.key_manager = fact.key_manager or "CUSTOMER"

    def create(self, fact: KeyFacts, row: Mapping[str, Any], request: Mapping[str, Any],
               response: Mapping[str, Any]) -> None:  # fmt: skip
        metadata = response.get("keyMetadata")
        meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
        fact.created_at = row[s.EVENT_TIME]
        fact.key_manager = string_at(meta, "keyManager") or fact.key_manager or "CUSTOMER"
        fact.key_spec = (
            string_at(meta, "keySpec") or string_at(meta, "customerMasterKeySpec")
            or string_at(request, "keySpec") or string_at(request, "customerMasterKeySpec")
            or "SYMMETRIC_DEFAULT"
        )  # fmt: skip
        fact.key_usage = (
            string_at(meta, "keyUsage") or string_at(request, "keyUsage") or fact.key_usage
        )
        fact.origin = string_at(meta, "origin") or string_at(request, "origin") or "AWS_KMS"
        fact.custom_key_store_id = (
            string_at(meta, "customKeyStoreId") or string_at(request, "customKeyStoreId")
            or fact.custom_key_store_id
        )  # fmt: skip
        multi = meta.get("multiRegion", request.get("multiRegion"))
        fact.multi_region = multi if isinstance(multi, bool) else fact.multi_region
        fact.key_state = string_at(meta, "keyState") or (
            "PendingImport" if fact.origin == "EXTERNAL" else "Enabled"
        )
        # A new key does not rotate until someone enables it.
        fact.rotation_enabled = False
        text = request.get("policy")
        if text is not None:
            fact.policy = _version(row, text)

    def rotation_setting(self, fact: KeyFacts, name: str, request: Mapping[str, Any],
                         when: dt.datetime, actor: str | None) -> None:  # fmt: skip
        if name == "EnableKeyRotation":
            period = request.get("rotationPeriodInDays")
            if fact.rotation_enabled is not True:
                fact.rotation_enabled_since = when
            fact.rotation_enabled = True
            fact.rotation_period_days = (
                int(period)
                if isinstance(period, int | float) and not isinstance(period, bool)
                else DEFAULT_ROTATION_PERIOD_DAYS
            )
        else:
            fact.rotation_enabled = False
            fact.rotation_enabled_since = None
        fact.rotation_changed_at = when
        fact.rotation_changed_by = actor

    def rotated(self, fact: KeyFacts, name: str, details: Mapping[str, Any],
                when: dt.datetime) -> None:  # fmt: skip
        if name == "RotateKeyOnDemand":
            fact.on_demand_rotations += 1
            kind = "ON_DEMAND"
        else:
            # The 2021 form ({keyId}) predates on-demand rotation: it is always automatic.
            kind = string_at(details, "rotationType") or "AUTOMATIC"
            if kind == "AUTOMATIC":
                fact.automatic_rotations += 1
                fact.last_automatic_rotation_at = when
                if fact.rotation_enabled is None:
                    fact.rotation_enabled = True  # KMS rotated it on its own: rotation is on
            origin = string_at(details, "keyOrigin")
            if origin and fact.origin is None:
                fact.origin = origin
        if fact.last_rotation_at is None or when >= fact.last_rotation_at:
            fact.last_rotation_at = when
            fact.last_rotation_type = kind

    def lifecycle(self, fact: KeyFacts, name: str, request: Mapping[str, Any],
                  response: Mapping[str, Any], when: dt.datetime) -> None:  # fmt: skip
        if name == "ScheduleKeyDeletion":
            fact.key_state = "PendingDeletion"
            window = request.get("pendingWindowInDays")
            days = window if isinstance(window, int) and not isinstance(window, bool) else None
            fact.deletion_date = parse_time(response.get("deletionDate")) or (
                when + dt.timedelta(days=days or DEFAULT_PENDING_WINDOW_DAYS)
            )
        elif name == "CancelKeyDeletion":
            fact.key_state = "Disabled"  # KMS leaves a key disabled after a cancelled deletion
            fact.deletion_date = None
        elif name == "DisableKey":
            fact.key_state = "Disabled"
        elif name == "EnableKey":
            fact.key_state = "Enabled"
        elif name == "DeleteKey":
            fact.key_state = "Deleted"
        elif name in ("ImportKeyMaterial", "GetParametersForImport"):
            fact.origin = "EXTERNAL"
            if name == "ImportKeyMaterial" and fact.key_state in (None, "PendingImport"):
                fact.key_state = "Enabled"
        elif name in ("DeleteImportedKeyMaterial", "DeleteExpiredKeyMaterial"):
            fact.origin = "EXTERNAL"
            fact.key_state = "PendingImport"

    def grant(self, row: dict[str, Any], name: str, key: str | None,
              request: Mapping[str, Any], response: Mapping[str, Any], ok: bool,
              on_day: bool) -> None:  # fmt: skip
        if name == "CreateGrant":
            grant_id = string_at(response, "grantId")
            info = GrantInfo(
                grant_id=grant_id or f"unknown:{row[s.EVENT_ID]}",
                key_arn=key,
                grantee=string_at(request, "granteePrincipal"),
                retiring=string_at(request, "retiringPrincipal"),
                operations=sorted(set(strings_at(request, "operations"))),
                name=string_at(request, "name"),
                constraints=_compact(request.get("constraints")),
                created_at=row[s.EVENT_TIME],
                created_by=row[s.ACTOR],
            )
            if ok and grant_id:
                self.grants[grant_id] = info
                if key:
                    self.fact(key).grants[grant_id] = info
                    self.fact(key).events_seen.add(name)
            if on_day:
                self.day_changes.append(DayChange(row, key, grant=info))
            return
        grant_id = string_at(request, "grantId") or string_at(
            json_object(row[s.ADDITIONAL_EVENT_DATA]), "grantId"
        )
        found = self.grants.get(grant_id) if grant_id else None
        if on_day:
            shown = found or (
                GrantInfo(grant_id, key, None, None, [], None, None, row[s.EVENT_TIME], None)
                if grant_id
                else None
            )
            self.day_changes.append(DayChange(row, key or (found.key_arn if found else None),
                                              grant=shown))  # fmt: skip
        if ok and found is not None:
            found.ended = name


def _version(row: Mapping[str, Any], text: Any) -> PolicyVersion:
    policy = text if isinstance(text, str) else _compact(text) or ""
    return PolicyVersion(row[s.EVENT_ID], row[s.EVENT_TIME], row[s.EVENT_NAME], row[s.ACTOR],
                         policy)  # fmt: skip


def _compact(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def walk(events: pl.DataFrame, day: dt.date, traits: Mapping[str, KeyTraits]) -> History:
    """Fold the management events up to ``day`` (any order given) into per-key facts."""
    walker = _Walker(day, traits)
    ordered = events.filter(pl.col(s.EVENT_DATE) <= day).sort(s.EVENT_TIME, s.EVENT_ID)
    for row in ordered.select(WALK_COLUMNS).iter_rows(named=True):
        walker.step(row)
    aliases: dict[str, list[str]] = {}
    for (_account, _region, alias_name), key in sorted(walker.alias_targets.items()):
        aliases.setdefault(key, []).append(alias_name)
    for key in aliases:
        walker.fact(key)
    accounts = ordered.get_column(s.RECIPIENT_ACCOUNT_ID).drop_nulls().unique().to_list()
    return History(
        facts=dict(sorted(walker.facts.items())),
        aliases={k: sorted(v) for k, v in aliases.items()},
        day_changes=walker.day_changes,
        managed_accounts=frozenset(accounts),
    )


def spec_class(fact: KeyFacts) -> str | None:
    """``symmetric``, ``asymmetric``, ``hmac``, or None when nothing says."""
    spec = fact.key_spec
    if spec:
        if spec == "SYMMETRIC_DEFAULT":
            return "symmetric"
        if spec.startswith("HMAC_"):
            return "hmac"
        return "asymmetric"
    traits = fact.traits
    if traits is None:
        return None
    if traits.hmac_ops:
        return "hmac"
    if traits.asymmetric_ops:
        return "asymmetric"
    if traits.symmetric_ops:
        return "symmetric"
    return None


def custom_store(fact: KeyFacts) -> str | None:
    return fact.custom_key_store_id or (fact.traits.custom_key_store_id if fact.traits else None)


def key_manager(fact: KeyFacts) -> str | None:
    if fact.key_manager:
        return fact.key_manager
    if fact.traits and fact.traits.aws_alias:
        return "AWS"
    return None
