"""Small, explicit CloudTrail fixtures: records and trail trees written the way CloudTrail does."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from pathlib import Path
from typing import Any

import orjson

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "eu-west-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/app/payments"


def event_id(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def assumed_role(role_arn: str = ROLE_ARN, session: str = "i-0abc123", account: str = ACCOUNT,
                 invoked_by: str | None = None) -> dict[str, Any]:  # fmt: skip
    role_name = role_arn.rsplit("/", 1)[-1]
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEEXAMPLE",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLE",
                "arn": role_arn,
                "accountId": account,
                "userName": role_name,
            },
            "attributes": {"creationDate": "2026-11-02T09:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    if invoked_by:
        identity["invokedBy"] = invoked_by
    return identity


def kms_record(
    name: str = "Decrypt",
    when: str = "2026-11-02T10:00:00Z",
    seed: str | None = None,
    identity: dict[str, Any] | None = None,
    key_arn: str | None = KEY_ARN,
    request: dict[str, Any] | None = None,
    source_ip: str = "10.0.1.17",
    **extra: Any,
) -> dict[str, Any]:
    """A KMS record shaped like the ones CloudTrail delivers (version 1.11)."""
    record: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": identity or assumed_role(),
        "eventTime": when,
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": source_ip,
        "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux",
        "requestParameters": request
        if request is not None
        else {"encryptionContext": {"app": "payments"}, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        "responseElements": None,
        "requestID": event_id(f"req-{seed or when + name}"),
        "eventID": event_id(seed or when + name),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if key_arn is not None:
        record["resources"] = [
            {"accountId": key_arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": key_arn}
        ]
    record.update(extra)
    return record


def day_of_records(day: dt.date, count: int, prefix: str = "") -> list[dict[str, Any]]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    step = 86400 // max(count, 1)
    return [
        kms_record(
            when=(start + dt.timedelta(seconds=i * step)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            seed=f"{prefix}{day.isoformat()}-{i}",
        )
        for i in range(count)
    ]


def document(records: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Records": records})


def gz(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(document(records), mtime=0)


def log_key(
    delivered: dt.datetime,
    unique: str,
    account: str = ACCOUNT,
    region: str = REGION,
    org: str | None = None,
    prefix: str = "",
) -> str:
    """``[prefix/]AWSLogs/[org/]account/CloudTrail/region/YYYY/MM/DD/name.json.gz``."""
    unique = (unique + "0" * 16)[:16]
    folder = f"AWSLogs/{org + '/' if org else ''}{account}/CloudTrail/{region}/"
    folder += delivered.strftime("%Y/%m/%d/")
    name = f"{account}_CloudTrail_{region}_{delivered.strftime('%Y%m%dT%H%MZ')}_{unique}.json.gz"
    return f"{prefix.rstrip('/') + '/' if prefix else ''}{folder}{name}"


def digest_key(delivered: dt.datetime, account: str = ACCOUNT, region: str = REGION) -> str:
    folder = f"AWSLogs/{account}/CloudTrail-Digest/{region}/{delivered.strftime('%Y/%m/%d/')}"
    stamp = delivered.strftime("%Y%m%dT%H%M%SZ")
    return f"{folder}{account}_CloudTrail-Digest_{region}_trail_{region}_{stamp}.json.gz"


def write_tree(root: Path, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def small_trail(days: int = 3, per_file: int = 40, files_per_day: int = 3) -> dict[str, bytes]:
    """A tidy trail: ``days`` days from 2026-11-02, some events delivered the next day."""
    objects: dict[str, bytes] = {}
    first = dt.date(2026, 11, 2)
    for d in range(days):
        day = first + dt.timedelta(days=d)
        records = day_of_records(day, per_file * files_per_day, prefix="t")
        for f in range(files_per_day):
            chunk = records[f * per_file : (f + 1) * per_file]
            last = dt.datetime.fromisoformat(chunk[-1]["eventTime"].replace("Z", "+00:00"))
            delivered = last + dt.timedelta(minutes=7)
            objects[log_key(delivered, f"D{d}F{f}")] = gz(chunk)
        stamp = dt.datetime(day.year, day.month, day.day, 1, tzinfo=dt.UTC)
        objects[digest_key(stamp)] = gzip.compress(b'{"awsAccountId":"111122223333"}')
    return objects
