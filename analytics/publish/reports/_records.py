"""Small helpers the report builders share: reading JSON fields of management events, naming
keys, and mapping aliases to keys.

Management events (key creation, policies, grants, rotation, aliases) are rare next to the
cryptographic calls — a handful a day even in a large organisation — so the report builders walk
them in Python, one row at a time, where the rules of KMS are easiest to state and to test.
Everything here is pure and total: unreadable JSON reads as "nothing known", never an exception.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import orjson

from analytics.ingest.identity import KMS_SOURCE

__all__ = [
    "ALIAS_EVENTS",
    "GRANT_EVENTS",
    "KMS_SOURCE",
    "LIFECYCLE_EVENTS",
    "POLICY_EVENTS",
    "REPORT_EVENTS",
    "ROTATION_EVENTS",
    "json_object",
    "key_arn_from",
    "key_id_of",
    "string_at",
]

POLICY_EVENTS = ("PutKeyPolicy", "CreateKey")
GRANT_EVENTS = ("CreateGrant", "RetireGrant", "RevokeGrant")
ROTATION_EVENTS = ("EnableKeyRotation", "DisableKeyRotation", "RotateKey", "RotateKeyOnDemand")
LIFECYCLE_EVENTS = (
    "CreateKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "DisableKey", "EnableKey",
    "DeleteKey", "ImportKeyMaterial", "DeleteImportedKeyMaterial", "GetParametersForImport",
    "ReplicateKey", "UpdatePrimaryRegion", "DeleteExpiredKeyMaterial",
)  # fmt: skip
ALIAS_EVENTS = ("CreateAlias", "UpdateAlias", "DeleteAlias")
REPORT_EVENTS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (*POLICY_EVENTS, *GRANT_EVENTS, *ROTATION_EVENTS, *LIFECYCLE_EVENTS, *ALIAS_EVENTS)
    )
)
"""The KMS events that say something about a key's configuration (not its use)."""

_KEY_ARN = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/(.+)$")


def json_object(text: str | bytes | None) -> dict[str, Any]:
    """A JSON object field of a record, ``{}`` when absent or not an object."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def string_at(document: Mapping[str, Any], *path: str) -> str | None:
    """``document[p0][p1]…`` when it is a non-empty string; None otherwise."""
    value: Any = document
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value if isinstance(value, str) and value else None


def strings_at(document: Mapping[str, Any], *path: str) -> list[str]:
    """A string or list of strings at ``path`` as a list (other values dropped)."""
    value: Any = document
    for part in path:
        if not isinstance(value, Mapping):
            return []
        value = value.get(part)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def key_id_of(key: str | None) -> str | None:
    """The bare key ID of a key ARN (``arn:…:key/abcd`` → ``abcd``); other text unchanged."""
    if key is None:
        return None
    match = _KEY_ARN.match(key)
    return match.group(4) if match else key


def is_key_arn(value: str | None) -> bool:
    return value is not None and _KEY_ARN.match(value) is not None


def arn_parts(key_arn: str) -> tuple[str, str, str] | None:
    """(partition, region, account) of a key ARN."""
    match = _KEY_ARN.match(key_arn)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def partition_of(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def key_arn_from(reference: str | None, region: str | None, account: str | None) -> str | None:
    """A key ARN from a key reference (ARN or bare ID) in a record of ``account``/``region``.

    Alias references cannot be resolved here and give None.
    """
    if not reference:
        return None
    if reference.startswith("arn:"):
        return reference if is_key_arn(reference) else None
    if reference.startswith("alias/") or not region or not account:
        return None
    return f"arn:{partition_of(region)}:kms:{region}:{account}:key/{reference}"


def parse_time(value: Any) -> dt.datetime | None:
    """A timestamp from a record field: ISO text (CloudTrail), epoch seconds (some exports),
    or a datetime; always timezone-aware UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        text = value.strip().replace("Z", "+00:00")
        # "Nov 28, 2026 12:00:00 AM" is how some KMS responses print deletionDate.
        for parse in (dt.datetime.fromisoformat, _parse_us_style):
            try:
                parsed = parse(text)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def _parse_us_style(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%b %d, %Y %I:%M:%S %p").replace(tzinfo=dt.UTC)
