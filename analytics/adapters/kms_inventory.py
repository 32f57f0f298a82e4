"""A point-in-time inventory of KMS keys from the KMS API (``keytrail report --inventory``).

CloudTrail history answers most rotation questions, but not all: a key whose rotation was
enabled before the lake's first day, an AWS managed key, or the exact next rotation date are only
known to KMS itself. This adapter asks it — ``ListKeys``, ``ListAliases``, ``DescribeKey``,
``GetKeyRotationStatus`` and ``ListKeyRotations`` per region — and returns plain
:class:`KeySnapshot` values, so the report code that merges them never touches boto3.

boto3 is imported inside :func:`snapshot` only: importing this module (for the dataclass) must not
load the AWS SDK into the pure library. Calls are retried by botocore's standard mode (throttling,
5xx); a permission or not-found error on one key is recorded on that key's snapshot instead of
failing the whole inventory, because an auditor prefers a report with one "access denied" row to
no report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

__all__ = ["InventoryError", "InventoryResult", "KeySnapshot", "snapshot"]


class InventoryError(RuntimeError):
    """The inventory could not be taken at all (no credentials, region unreachable…)."""


@dataclass(frozen=True)
class KeySnapshot:
    """One key as the KMS API described it. Fields are None when the API did not say (or the
    call was refused: ``error`` then says which call and why)."""

    key_arn: str
    key_id: str
    account_id: str | None
    region: str
    key_manager: str | None = None
    key_spec: str | None = None
    key_usage: str | None = None
    origin: str | None = None
    key_state: str | None = None
    custom_key_store_id: str | None = None
    multi_region: bool | None = None
    creation_date: dt.datetime | None = None
    deletion_date: dt.datetime | None = None
    rotation_enabled: bool | None = None
    rotation_period_days: int | None = None
    next_rotation_date: dt.datetime | None = None
    last_rotation_date: dt.datetime | None = None
    last_rotation_type: str | None = None
    rotations: int = 0
    aliases: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class InventoryResult:
    keys: list[KeySnapshot] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


def _client(region: str, endpoint_url: str | None) -> KMSClient:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10,
                    read_timeout=30)  # fmt: skip
    client: KMSClient = boto3.session.Session().client(
        "kms", region_name=region, endpoint_url=endpoint_url, config=config
    )
    return client


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _describe(
    client: KMSClient, key: str, region: str, aliases: dict[str, list[str]]
) -> KeySnapshot:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        meta = client.describe_key(KeyId=key)["KeyMetadata"]
    except (ClientError, BotoCoreError) as exc:
        key_id = key.rsplit("/", 1)[-1]
        account = key.split(":")[4] if key.startswith("arn:") else None
        return KeySnapshot(key, key_id, account, region, error=f"DescribeKey: {_code(exc)}")
    arn = meta.get("Arn") or key
    key_id = meta["KeyId"]
    values: dict[str, Any] = {
        "key_manager": meta.get("KeyManager"),
        "key_spec": meta.get("KeySpec"),
        "key_usage": meta.get("KeyUsage"),
        "origin": meta.get("Origin"),
        "key_state": meta.get("KeyState"),
        "custom_key_store_id": meta.get("CustomKeyStoreId"),
        "multi_region": meta.get("MultiRegion"),
        "creation_date": _aware(meta.get("CreationDate")),
        "deletion_date": _aware(meta.get("DeletionDate")),
        "aliases": tuple(sorted(aliases.get(key_id, []))),
    }
    errors: list[str] = []
    rotatable = (
        meta.get("KeySpec") == "SYMMETRIC_DEFAULT"
        and meta.get("Origin") == "AWS_KMS"
        and meta.get("KeyState") not in ("PendingDeletion", "PendingReplicaDeletion")
    )
    if rotatable:
        try:
            status = client.get_key_rotation_status(KeyId=key_id)
            values["rotation_enabled"] = status.get("KeyRotationEnabled")
            values["rotation_period_days"] = status.get("RotationPeriodInDays")
            values["next_rotation_date"] = _aware(status.get("NextRotationDate"))
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"GetKeyRotationStatus: {_code(exc)}")
    rotations: list[dict[str, Any]] = []
    if meta.get("KeySpec") == "SYMMETRIC_DEFAULT":
        try:
            paginator = client.get_paginator("list_key_rotations")
            for page in paginator.paginate(KeyId=key_id):
                rotations.extend(dict(r) for r in page.get("Rotations", []))
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) not in ("UnsupportedOperationException",):
                errors.append(f"ListKeyRotations: {_code(exc)}")
    dated = [r for r in rotations if isinstance(r.get("RotationDate"), dt.datetime)]
    if dated:
        last = max(dated, key=lambda r: r["RotationDate"])
        values["last_rotation_date"] = _aware(last["RotationDate"])
        values["last_rotation_type"] = last.get("RotationType")
    values["rotations"] = len(rotations)
    account = arn.split(":")[4] if arn.startswith("arn:") else meta.get("AWSAccountId")
    return KeySnapshot(arn, key_id, account, region, error="; ".join(errors) or None, **values)


def snapshot(
    regions: Iterable[str],
    endpoint_url: str | None = None,
    extra_keys: Iterable[str] = (),
) -> InventoryResult:
    """Describe every key ``ListKeys`` shows in ``regions``, plus ``extra_keys`` (ARNs of keys
    in other accounts that the lake saw; they are described when the key policy allows it)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    result = InventoryResult()
    extra_by_region: dict[str, set[str]] = {}
    for arn in extra_keys:
        parts = arn.split(":")
        if len(parts) >= 6 and parts[2] == "kms":
            extra_by_region.setdefault(parts[3], set()).add(arn)
    for region in sorted(set(regions) | set(extra_by_region)):
        client = _client(region, endpoint_url)
        aliases: dict[str, list[str]] = {}
        listed: list[str] = []
        try:
            for alias_page in client.get_paginator("list_aliases").paginate():
                for alias in alias_page.get("Aliases", []):
                    target = alias.get("TargetKeyId")
                    if target and alias.get("AliasName"):
                        aliases.setdefault(target, []).append(alias["AliasName"])
            for key_page in client.get_paginator("list_keys").paginate():
                listed.extend(k["KeyArn"] for k in key_page.get("Keys", []) if k.get("KeyArn"))
        except NoCredentialsError:
            raise InventoryError(
                "no AWS credentials for the KMS inventory (set AWS_PROFILE or the usual "
                "AWS_* variables, or run without --inventory)"
            ) from None
        except (ClientError, BotoCoreError) as exc:
            result.errors.append(f"{region}: ListKeys/ListAliases failed ({_code(exc)})")
            continue
        seen = set(listed)
        for key in sorted(seen | (extra_by_region.get(region, set()) - seen)):
            result.keys.append(_describe(client, key, region, aliases))
    result.keys.sort(key=lambda k: k.key_arn)
    return result
