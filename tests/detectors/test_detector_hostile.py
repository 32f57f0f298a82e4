"""Attacker-controlled text in records must not break, or leak out unbounded from, a detector.

Everything a caller sends — user agent, encryption context, alias names, policy documents,
grantee names, trail names — lands in CloudTrail verbatim. Detectors must treat it as data:
no exception, no control characters or multi-kilobyte values copied into a reason.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.detect.detectors import ALL_DETECTORS, RuleDetector
from analytics.lake import schema as s
from tests.detectors.helpers import context, events_from_records, run

OWNER = "111122223333"
OUTSIDE = "999988887777"
KEY = f"arn:aws:kms:us-east-1:{OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SCRIPT = "<script>alert('x')</script>"
SQL = "'; DROP TABLE events; -- \" OR 1=1"
NEWLINES = "line one\nline two\r\n\ttabbed\x00nul"
HUGE = "A" * 10_240
HOSTILE = f"{SCRIPT}{SQL}{NEWLINES}{HUGE}"


def _role(name: str, account: str = OWNER) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{account}:assumed-role/{name}/{NEWLINES}",
        "accountId": account,
        "principalId": f"AROAEXAMPLE:{SQL}",
        "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{account}:role/{name}"}},
    }


def _record(n: int, source: str, name: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.10",
        "eventID": f"hostile-{n}-{SQL}",
        "eventTime": f"2026-11-28T{n % 24:02d}:{n % 60:02d}:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.66",
        "userAgent": f"{SCRIPT} {HUGE}",
        "userIdentity": _role(f"role{SCRIPT}"),
        "recipientAccountId": OWNER,
        "resources": [{"ARN": KEY, "accountId": OWNER, "type": "AWS::KMS::Key"}],
        "readOnly": False,
        "eventType": "AwsApiCall",
    }
    record.update(fields)
    return record


def _policy_text() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": NEWLINES,
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{OUTSIDE}:role/{HOSTILE}", SQL]},
                    "Action": [f"kms:{SCRIPT}", HUGE],
                    "Resource": "*",
                    "Condition": {SQL: {SCRIPT: [HUGE, NEWLINES]}},
                },
                {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:Decrypt"},
                {"Effect": SCRIPT, "Principal": 42, "Action": {"nested": [1, 2]}},
                "not a statement",
            ],
        }
    )


def _hostile_day() -> list[dict[str, Any]]:
    kms, trail = "kms.amazonaws.com", "cloudtrail.amazonaws.com"
    context_bomb = {"encryptionContext": {SQL: HOSTILE, "aws:s3:arn": SCRIPT}, "keyId": KEY}
    records = [
        _record(1, kms, "DisableKey", requestParameters={"keyId": KEY}),
        _record(2, kms, "ScheduleKeyDeletion",
                requestParameters={"keyId": KEY, "pendingWindowInDays": f"7{SQL}"},
                responseElements={"keyId": KEY, "deletionDate": HOSTILE}),
        _record(3, kms, "ImportKeyMaterial",
                requestParameters={"keyId": KEY, "validTo": HOSTILE, "expirationModel": SCRIPT}),
        _record(4, kms, "PutKeyPolicy", requestParameters={"keyId": KEY, "policy": _policy_text()}),
        _record(5, kms, "PutKeyPolicy", requestParameters={"keyId": KEY, "policy": "{not json"}),
        _record(6, kms, "PutKeyPolicy", requestParameters={"keyId": KEY, "policy": 12}),
        _record(7, kms, "CreateKey",
                requestParameters={"policy": json.dumps({"Statement": {"Principal": "*"}}),
                                   "origin": "EXTERNAL"},
                responseElements={"keyMetadata": {"arn": KEY, "description": HOSTILE}}),
        _record(8, kms, "CreateGrant",
                requestParameters={"keyId": KEY, "granteePrincipal": HOSTILE,
                                   "retiringPrincipal": f"arn:aws:iam::{OUTSIDE}:role/{SCRIPT}",
                                   "operations": [SQL, HUGE], "constraints": SCRIPT}),
        _record(9, kms, "DisableKeyRotation", requestParameters={"keyId": KEY}),
        _record(10, kms, "UpdateAlias",
                requestParameters={"aliasName": f"alias/{HOSTILE}", "targetKeyId": HOSTILE}),
        _record(11, kms, "DeleteAlias", requestParameters={"aliasName": f"alias/{HOSTILE}"}),
        _record(12, kms, "CreateAlias",
                requestParameters={"aliasName": f"alias/{HOSTILE}", "targetKeyId": KEY}),
        _record(13, trail, "StopLogging", requestParameters={"name": HOSTILE}, resources=None),
        _record(14, trail, "UpdateTrail",
                requestParameters={"name": HOSTILE, HUGE: {SQL: [SCRIPT]}}, resources=None),
        _record(15, trail, "PutEventSelectors", resources=None,
                requestParameters={"trailName": HOSTILE, "eventSelectors": SCRIPT}),
        _record(16, trail, "PutEventSelectors", resources=None,
                requestParameters={"trailName": SQL, "eventSelectors": [
                    {"readWriteType": HOSTILE, "includeManagementEvents": SCRIPT,
                     "excludeManagementEventSources": "kms.amazonaws.com"}, SQL]}),
        _record(17, trail, "PutEventSelectors", resources=None,
                requestParameters={"trailName": SQL, "advancedEventSelectors": [
                    {"name": HOSTILE, "fieldSelectors": [{"field": "eventCategory",
                                                          "equals": "Management"},
                                                         {"field": "eventSource",
                                                          "notEquals": [HOSTILE]}]},
                    {"name": None, "fieldSelectors": SCRIPT}]}),
        _record(18, kms, "Decrypt", userIdentity={"type": "Root", "accountId": OWNER,
                                                 "arn": f"arn:aws:iam::{OWNER}:root"},
                requestParameters=context_bomb),
    ]  # fmt: skip
    for n in range(19, 49):  # a failure burst with hostile messages, across a few keys
        records.append(
            _record(
                n, kms, "Decrypt", requestParameters=context_bomb,
                errorCode="KMSInvalidStateException",
                errorMessage=f"{KEY} is pending deletion. {HOSTILE}",
                resources=[{"ARN": KEY.replace("1234abcd", f"{n:08d}")}],
                eventTime=f"2026-11-28T13:{n:02d}:00Z",
            )
        )  # fmt: skip
    records.append(
        _record(49, kms, "Decrypt", userIdentity=_role(f"x{HUGE}", account=OUTSIDE),
                requestParameters=context_bomb)
    )  # fmt: skip
    person = {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{OWNER}:user/{SCRIPT}",
        "accountId": OWNER,
        "userName": NEWLINES,
        "invokedBy": SQL,
    }
    for n in range(50, 80):  # a bulk read of secrets and parameters named by the attacker
        names = (
            {"SecretARN": f"{HOSTILE}{n}", "SecretVersionId": SQL}
            if n % 2
            else {"PARAMETER_ARN": f"arn:aws:ssm:x:1:parameter/{NEWLINES}{HUGE}{n}"}
        )
        records.append(
            _record(n, kms, "Decrypt", userIdentity=person, sourceIPAddress=SQL,
                    requestParameters={"encryptionContext": names},
                    eventTime=f"2026-11-28T15:{n - 50:02d}:00Z")
        )  # fmt: skip
    return records


@pytest.fixture(scope="module")
def hostile_findings() -> dict[str, Any]:
    day = events_from_records(_hostile_day())
    history = events_from_records(
        [{**r, "eventTime": "2026-11-20T10:00:00Z", "eventID": f"old-{r['eventID']}"}
         for r in _hostile_day()[:12]]
    )  # fmt: skip
    ctx = context(day, history, settings={"warmup_days": 0})
    return {d.id: run(d, ctx) for d in ALL_DETECTORS}


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.id)
def test_hostile_records_do_not_break_the_detector(
    detector: RuleDetector, hostile_findings: dict[str, Any]
) -> None:
    findings = hostile_findings[detector.id]
    for reason in findings.get_column(s.REASON).to_list():
        assert len(reason) < 4_000
        assert not any(c in reason for c in "\n\r\t\x00")
    for baseline in findings.get_column(s.BASELINE).drop_nulls().to_list():
        assert len(baseline) < 2_000


def test_hostile_records_still_fire_the_rules_they_match(hostile_findings: dict[str, Any]) -> None:
    fired = {d for d, f in hostile_findings.items() if f.height}
    assert {
        "KMS.KeyDisabledOrScheduledForDeletion",
        "KMS.ImportedKeyMaterialChanged",
        "KMS.KeyPolicyChanged",
        "KMS.GrantToExternalPrincipal",
        "KMS.RotationDisabled",
        "KMS.AliasRetargeted",
        "KMS.PendingDeletionKeyUsed",
        "KMS.FailedDecryptBurst",
        "KMS.RootKmsUsage",
        "KMS.NewCrossAccountCaller",
        "KMS.KmsMonitoringDisabled",
        "KMS.NewActorForKey",
        "KMS.BulkSecretDecryption",
    } <= fired


def test_hostile_policy_is_still_judged_public(hostile_findings: dict[str, Any]) -> None:
    findings = hostile_findings["KMS.KeyPolicyChanged"]
    assert "critical" in findings.get_column(s.SEVERITY).to_list()
