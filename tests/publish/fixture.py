"""A small, hand-written CloudTrail history for the publishing tests and their golden files.

Eight days of ordinary traffic on nine keys (2026-11-02 … 2026-11-09) plus one day in June, and on
the report day (2026-11-09, a Monday) the things the reports must show: a burst over the usual
band, a new actor, a cross-account caller, root with a ``<script>`` user agent, a denied
PutKeyPolicy with a formula-shaped user agent, a policy change that names an outside account,
grants created, revoked and retired, rotation disabled, use of a key pending deletion. The keys
cover every rotation case: on schedule (180 days), overdue (90 days, last rotated in June with
the 2021 ``RotateKey`` form), on-demand rotation (2025 form), disabled, asymmetric, imported,
custom key store, AWS managed, pending deletion.

The alerts are written by hand too (not by the detectors), so the golden files change when the
report code changes, not when a detector's wording does.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from analytics.adapters.lake import LocalLake, write_parquet_atomic
from analytics.adapters.sources import LocalSource
from analytics.detect import incidents
from analytics.detect.scoring import alerts_path, incidents_path
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests import trail as t

ACCOUNT = t.ACCOUNT
SISTER = t.OTHER_ACCOUNT
OUTSIDE = "999988887777"
REGION = t.REGION
DAY = dt.date(2026, 11, 9)
GENERATED_AT = dt.datetime(2026, 11, 10, 6, 0, tzinfo=dt.UTC)
SCRIPT_AGENT = '<script>alert("kt")</script>'
FORMULA_AGENT = '=HYPERLINK("http://evil.example","click")'
MARKDOWN_AGENT = "burst|agent `tick` [x](http://evil.example)\nsecond line"


def key_arn(key_id: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:kms:{REGION}:{account}:key/{key_id}"


K_PAY = t.KEY_ARN
K_RPT = key_arn("2222bbbb-22bb-44cc-88dd-2222bbbb2222")
K_OLD = key_arn("3333cccc-33cc-44dd-88ee-3333cccc3333")
K_SIGN = key_arn("4444dddd-44dd-44ee-88ff-4444dddd4444")
K_IMP = key_arn("5555eeee-55ee-44ff-8800-5555eeee5555")
K_DEL = key_arn("6666ffff-66ff-4400-8811-6666ffff6666")
K_AWS = key_arn("7777aaaa-77aa-4411-8822-7777aaaa7777")
K_OND = key_arn("8888bbbb-88bb-4422-8833-8888bbbb8888")
K_CKS = key_arn("9999cccc-99cc-4433-8844-9999cccc9999")

PAYMENTS = t.ROLE_ARN
REPORTS = f"arn:aws:iam::{ACCOUNT}:role/reports"
BATCH = f"arn:aws:iam::{ACCOUNT}:role/batch"
SIGNER = f"arn:aws:iam::{ACCOUNT}:role/signer"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/admin"
TERRAFORM = f"arn:aws:iam::{ACCOUNT}:role/ci/terraform"
DEV = f"arn:aws:iam::{ACCOUNT}:role/dev"
ANALYTICS = f"arn:aws:iam::{ACCOUNT}:role/analytics"
SISTER_ROLE = f"arn:aws:iam::{SISTER}:role/reporting"


def _policy(*statements: dict[str, Any]) -> str:
    root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*", "Resource": "*"}  # fmt: skip
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


POLICY_V1 = _policy(
    {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": PAYMENTS},
     "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
)  # fmt: skip
POLICY_V2 = _policy(
    {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": [PAYMENTS, ANALYTICS]},
     "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
    {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OUTSIDE}:root"},
     "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}},
)  # fmt: skip


def _when(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _role(arn: str, session: str = "s-1") -> dict[str, Any]:
    account = arn.split(":")[4]
    return t.assumed_role(arn, session=session, account=account)


def _root(account: str = ACCOUNT) -> dict[str, Any]:
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root",
            "accountId": account, "accessKeyId": "ASIAROOTEXAMPLE"}  # fmt: skip


def _internal(account: str = ACCOUNT) -> dict[str, Any]:
    return {"accountId": account, "invokedBy": "AWS Internal"}


def _key_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def call(name: str, when: str, seed: str, who: str | dict[str, Any], key: str | None,
         request: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    identity = _role(who) if isinstance(who, str) else who
    read_only = name in ("Decrypt", "Encrypt", "GenerateDataKey", "Sign", "ListKeys")
    if request is None:
        request = {
            "keyId": _key_id(key) if key else None,
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
        request = {k: v for k, v in request.items() if v is not None}
    record = t.kms_record(name, when=when, seed=seed, identity=identity, key_arn=key,
                          request=request, readOnly=read_only, **extra)  # fmt: skip
    if identity.get("accountId") and identity["accountId"] != ACCOUNT:
        record["recipientAccountId"] = ACCOUNT
        record["sharedEventID"] = t.event_id("shared-" + seed)
    return record


def _service_event(name: str, when: str, seed: str, key: str | None,
                   details: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    record = t.kms_record(name, when=when, seed=seed, identity=_internal(), key_arn=key,
                          request=None, source_ip="AWS Internal")  # fmt: skip
    record.update(eventType="AwsServiceEvent", userAgent="AWS Internal", readOnly=False,
                  requestParameters=None, serviceEventDetails=details)  # fmt: skip
    if key is None:
        record.pop("resources", None)
    return record


def _create_key(when: str, seed: str, key: str, request: dict[str, Any],
                meta: dict[str, Any] | None = None, resources: bool = True) -> dict[str, Any]:  # fmt: skip
    metadata = {"AWSAccountId": ACCOUNT, "keyId": _key_id(key), "arn": key,
                "creationDate": when, "enabled": True, "keyManager": "CUSTOMER",
                "keyState": "Enabled", "keyUsage": "ENCRYPT_DECRYPT",
                "keySpec": "SYMMETRIC_DEFAULT", "origin": "AWS_KMS", **(meta or {})}  # fmt: skip
    return call("CreateKey", when, seed, TERRAFORM, key if resources else None, request,
                responseElements={"keyMetadata": metadata})  # fmt: skip


def june_records() -> list[dict[str, Any]]:
    day = dt.date(2026, 6, 1)
    return [
        _create_key(_when(day, 8), "jun-create-rpt", K_RPT,
                    {"policy": _policy(), "keyUsage": "ENCRYPT_DECRYPT"}),
        call("EnableKeyRotation", _when(day, 8, 5), "jun-rot-rpt", TERRAFORM, K_RPT,
             {"keyId": _key_id(K_RPT)}),
        call("EnableKeyRotation", _when(day, 9), "jun-rot-old", TERRAFORM, K_OLD,
             {"keyId": _key_id(K_OLD), "rotationPeriodInDays": 90}),
        # The 2021 form: only the key ID, no resources; always an automatic rotation.
        _service_event("RotateKey", _when(day, 10), "jun-rotate-old", None,
                       {"keyId": _key_id(K_OLD)}),
        call("GenerateDataKey", _when(day, 11), "jun-use-old", BATCH, K_OLD),
    ]  # fmt: skip


def ordinary_day(day: dt.date) -> list[dict[str, Any]]:
    """The traffic every day has: the same actors on the same keys at the same hours."""
    tag = day.isoformat()
    records: list[dict[str, Any]] = []
    for hour in range(9, 17):
        for i in range(3):
            records.append(call("Decrypt", _when(day, hour, 7 + i * 15), f"{tag}-pay-{hour}-{i}",
                                PAYMENTS, K_PAY))  # fmt: skip
    for hour in (2, 3):
        for i in range(5):
            records.append(call("GenerateDataKey", _when(day, hour, i * 10), f"{tag}-rpt-{hour}-{i}",
                                REPORTS, K_RPT, {"keyId": _key_id(K_RPT), "keySpec": "AES_256"}))  # fmt: skip
    for i in range(2):
        records.append(call("GenerateDataKey", _when(day, 1, i * 20), f"{tag}-old-{i}", BATCH,
                            K_OLD, {"keyId": _key_id(K_OLD), "keySpec": "AES_256"}))  # fmt: skip
        records.append(call("Sign", _when(day, 12, i * 20), f"{tag}-sign-{i}", SIGNER, K_SIGN,
                            {"keyId": _key_id(K_SIGN), "signingAlgorithm": "RSASSA_PSS_SHA_256",
                             "messageType": "DIGEST"}))  # fmt: skip
        s3_call = call("Decrypt", _when(day, 10, i * 20), f"{tag}-s3-{i}",
                       t.assumed_role(PAYMENTS, invoked_by="s3.amazonaws.com"), K_AWS,
                       {"keyId": "alias/aws/s3", "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::b"}},
                       source_ip="s3.amazonaws.com")  # fmt: skip
        records.append(s3_call)
    records.append(call("Decrypt", _when(day, 11, 30), f"{tag}-cks", PAYMENTS, K_CKS,
                        additionalEventData={"customKeyStoreId": "cks-1234567890abcdef0"}))  # fmt: skip
    return records


def setup_records() -> dict[dt.date, list[dict[str, Any]]]:
    """Key creation and configuration in the first days of November."""
    d2, d3, d5, d6, d7, d8 = (dt.date(2026, 11, n) for n in (2, 3, 5, 6, 7, 8))
    return {
        d2: [
            _create_key(_when(d2, 8), "create-pay", K_PAY, {"policy": POLICY_V1,
                        "description": "payments"}),
            call("EnableKeyRotation", _when(d2, 8, 1), "rot-pay", TERRAFORM, K_PAY,
                 {"keyId": _key_id(K_PAY), "rotationPeriodInDays": 180},
                 responseElements={"keyId": K_PAY}),
            call("CreateAlias", _when(d2, 8, 2), "alias-pay", TERRAFORM, K_PAY,
                 {"aliasName": "alias/payments", "targetKeyId": _key_id(K_PAY)}),
            call("EnableKeyRotation", _when(d2, 8, 3), "rot-ond", TERRAFORM, K_OND,
                 {"keyId": _key_id(K_OND)}),
        ],
        d3: [
            # Events of 11-02 delivered in 11-03's log file (late delivery).
            # No resources: the key ARN is read from the response's keyMetadata.
            _create_key(_when(d2, 7), "create-sign", K_SIGN,
                        {"keySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"},
                        {"keySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, resources=False),
            _create_key(_when(d2, 7, 10), "create-imp", K_IMP, {"origin": "EXTERNAL"},
                        {"origin": "EXTERNAL", "keyState": "PendingImport"}),
            call("GetParametersForImport", _when(d2, 7, 11), "params-imp", TERRAFORM, K_IMP,
                 {"keyId": _key_id(K_IMP), "wrappingAlgorithm": "RSAES_OAEP_SHA_256",
                  "wrappingKeySpec": "RSA_4096"}),
            call("ImportKeyMaterial", _when(d2, 7, 12), "import-imp", TERRAFORM, K_IMP,
                 {"keyId": _key_id(K_IMP), "expirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
        ],
        d5: [
            call("CreateGrant", _when(d5, 10), "grant-old", ADMIN, K_PAY,
                 {"keyId": _key_id(K_PAY), "granteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/ec2-worker",
                  "operations": ["Decrypt"]},
                 responseElements={"grantId": "g-old-0001", "keyId": K_PAY}),
        ],
        d6: [
            call("ScheduleKeyDeletion", _when(d6, 16), "delete-del", ADMIN, K_DEL,
                 {"keyId": _key_id(K_DEL), "pendingWindowInDays": 7},
                 responseElements={"keyId": K_DEL, "deletionDate": "Nov 13, 2026 12:00:00 AM",
                                   "keyState": "PendingDeletion", "pendingWindowInDays": 7}),
        ],
        d7: [
            call("RotateKeyOnDemand", _when(d7, 10), "ond-call", ADMIN, K_OND,
                 {"keyId": _key_id(K_OND)}, responseElements={"keyId": K_OND}),
            _service_event("RotateKey", _when(d7, 10, 5), "ond-rotate", K_OND,
                           {"rotationType": "ON_DEMAND", "keyOrigin": "AWS_KMS",
                            "previousKeyMaterialId": "a" * 64, "currentKeyMaterialId": "b" * 64}),
        ],
        d8: [
            call("DisableKey", _when(d8, 17), "disable-imp", ADMIN, K_IMP,
                 {"keyId": _key_id(K_IMP)}),
        ],
    }  # fmt: skip


def report_day_records() -> list[dict[str, Any]]:
    d = DAY
    tag = "d"
    records = [
        call("Decrypt", _when(d, 13, i // 2, (i % 2) * 30), f"{tag}-burst-{i}", PAYMENTS, K_PAY,
             userAgent=MARKDOWN_AGENT if i == 0 else "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux")
        for i in range(40)
    ]  # fmt: skip
    records += [
        call("Decrypt", _when(d, 14, 10, i), f"{tag}-analytics-{i}", ANALYTICS, K_PAY)
        for i in range(2)
    ]
    records += [
        call("Decrypt", _when(d, 15), f"{tag}-sister", SISTER_ROLE, K_PAY),
        call("Decrypt", _when(d, 3, 12), f"{tag}-root", _root(), K_PAY, userAgent=SCRIPT_AGENT,
             source_ip="203.0.113.50"),
        call("Decrypt", _when(d, 9, 30), f"{tag}-incorrect", PAYMENTS, K_PAY,
             errorCode="IncorrectKeyException",
             errorMessage="The key ID in the request does not identify a CMK that can perform this operation."),
        call("PutKeyPolicy", _when(d, 11), f"{tag}-put-denied", DEV, K_PAY,
             {"keyId": _key_id(K_PAY), "policyName": "default", "policy": POLICY_V2},
             errorCode="AccessDenied", userAgent=FORMULA_AGENT,
             errorMessage="User is not authorized to perform: kms:PutKeyPolicy"),
        call("ListKeys", _when(d, 11, 0, 30), f"{tag}-listkeys", ADMIN, None, {"limit": 100}),
        call("PutKeyPolicy", _when(d, 11, 5), f"{tag}-put", ADMIN, K_PAY,
             {"keyId": _key_id(K_PAY), "policyName": "default", "policy": POLICY_V2,
              "bypassPolicyLockoutSafetyCheck": False}),
        call("CreateGrant", _when(d, 11, 10), f"{tag}-grant", ADMIN, K_PAY,
             {"keyId": _key_id(K_PAY), "granteePrincipal": f"arn:aws:iam::{OUTSIDE}:role/partner",
              "retiringPrincipal": f"arn:aws:iam::{OUTSIDE}:role/partner",
              "operations": ["Decrypt", "DescribeKey"],
              "constraints": {"encryptionContextSubset": {"app": "payments"}}},
             responseElements={"grantId": "g-new-0002", "keyId": K_PAY}),
        call("RevokeGrant", _when(d, 11, 12), f"{tag}-revoke", ADMIN, K_PAY,
             {"keyId": _key_id(K_PAY), "grantId": "g-old-0001"}),
        call("RetireGrant", _when(d, 11, 15), f"{tag}-retire", ADMIN, K_PAY,
             {"keyId": _key_id(K_PAY), "grantId": "g-unknown-0003"}),
        call("DisableKeyRotation", _when(d, 18, 30), f"{tag}-disable-rot", ADMIN, K_RPT,
             {"keyId": _key_id(K_RPT)}),
        call("Decrypt", _when(d, 12), f"{tag}-pending", BATCH, K_DEL,
             errorCode="KMSInvalidStateException",
             errorMessage=f"{K_DEL} is pending deletion."),
    ]  # fmt: skip
    return records


def records_by_day() -> dict[dt.date, list[dict[str, Any]]]:
    days: dict[dt.date, list[dict[str, Any]]] = {dt.date(2026, 6, 1): june_records()}
    setup = setup_records()
    for offset in range(8):
        day = dt.date(2026, 11, 2) + dt.timedelta(days=offset)
        days[day] = ordinary_day(day) + setup.get(day, [])
    days[DAY] += report_day_records()
    return days


def write_tree(root: Path) -> None:
    objects: dict[str, bytes] = {}
    for day, records in records_by_day().items():
        delivered = dt.datetime(day.year, day.month, day.day, 23, 59, tzinfo=dt.UTC)
        objects[t.log_key(delivered, f"F{day:%m%d}")] = t.gz(records)
    t.write_tree(root, objects)


def event_id(seed: str) -> str:
    return t.event_id(seed)


def alerts() -> pl.DataFrame:
    """The report day's alerts, as the detectors would write them (one suppressed)."""
    start = dt.datetime(2026, 11, 9, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)

    def alert(alert_id: str, detector: str, severity: str, title: str, reason: str, *,
              key: str | None, actor: str | None, window: tuple[dt.datetime, dt.datetime],
              evidence: list[str], count: int, pattern: str, baseline: str | None = None,
              features: list[dict[str, Any]] | None = None, score: float | None = None,
              suppressed_by: str | None = None, mitre: tuple[str, ...] = ("T1078",),
              invoked_by: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            s.ALERT_ID: alert_id, s.DETECTOR: detector, s.SEVERITY: severity, s.SCORE: score,
            s.EVENT_DATE: DAY, s.WINDOW_START: window[0], s.WINDOW_END: window[1],
            s.ACCOUNT_ID: ACCOUNT, s.AWS_REGION: REGION, s.KEY_ARN: key, s.ACTOR: actor,
            s.INVOKED_BY: invoked_by, s.TITLE: title, s.REASON: reason, s.BASELINE: baseline,
            s.TOP_FEATURES: features, s.OBSERVED_PATTERN: pattern, s.MITRE: list(mitre),
            s.RUNBOOK: "1. Check the evidence.\n2. Ask the owner.", s.EVIDENCE_EVENT_IDS: evidence,
            s.EVIDENCE_COUNT: count, s.SUPPRESSED_BY: suppressed_by,
        }  # fmt: skip

    rows = [
        alert("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "KMS.RootKmsUsage", "high", "Root user called KMS",
              f"The root user of account {ACCOUNT} made 1 KMS call(s) (Decrypt) with user agent "
              f"{SCRIPT_AGENT}; root | should `never` be [used](http://x).",
              key=K_PAY, actor=f"root:{ACCOUNT}", window=(start + 3 * hour, start + 4 * hour),
              evidence=[event_id("d-root")], count=1, pattern="RARE",
              baseline="the root user is expected never to call KMS", mitre=("T1078.004",)),
        alert("1b2c3d4e5f60718293a4b5c6d7e8f90a", "KMS.UnusualKeyUsage", "medium",
              "Unusual use of a KMS key",
              "Decrypt 40 calls 13:00–14:00 vs usual 3, p99 3",
              key=K_PAY, actor=PAYMENTS, window=(start + 13 * hour, start + 14 * hour),
              evidence=[event_id(f"d-burst-{i}") for i in range(3)], count=40, pattern="SURGE",
              baseline="hourly calls of this key by this actor at 13:00 over the baseline window: "
                       "median 3, p99 of active hours 3",
              features=[{"name": "volume_vs_usual", "value": 3.36, "usual": None,
                         "contribution": 0.12, "text": "Decrypt 40 calls 13:00–14:00 vs usual 3"}],
              score=0.71),
        alert("2c3d4e5f60718293a4b5c6d7e8f90a1b", "KMS.KeyPolicyChanged", "high",
              "KMS key policy changed",
              f"{ADMIN} changed the key policy of {K_PAY}: new outside account {OUTSIDE}.",
              key=K_PAY, actor=ADMIN, window=(start + 11 * hour + dt.timedelta(minutes=5),) * 2,
              evidence=[event_id("d-put")], count=1, pattern="EXPOSURE",
              baseline="previous policy set by CreateKey at 2026-11-02 08:00 UTC",
              mitre=("T1098", "T1537")),
        alert("3d4e5f60718293a4b5c6d7e8f90a1b2c", "KMS.RotationDisabled", "medium",
              "KMS key rotation disabled",
              f"{ADMIN} turned off automatic rotation of KMS key {K_RPT} at 18:30 UTC.",
              key=K_RPT, actor=ADMIN, window=(start + dt.timedelta(hours=18, minutes=30),) * 2,
              evidence=[event_id("d-disable-rot")], count=1, pattern="CHANGE", mitre=("T1562",)),
        alert("4e5f60718293a4b5c6d7e8f90a1b2c3d", "KMS.GrantToExternalPrincipal", "high",
              "KMS grant to an outside principal",
              f"{ADMIN} granted arn:aws:iam::{OUTSIDE}:role/partner Decrypt on {K_PAY}.",
              key=K_PAY, actor=ADMIN, window=(start + dt.timedelta(hours=11, minutes=10),) * 2,
              evidence=[event_id("d-grant")], count=1, pattern="EXPOSURE",
              suppressed_by="SUP-1 partner onboarding (owner: kms-team, until 2026-12-31)"),
        alert("5f60718293a4b5c6d7e8f90a1b2c3d4e", "KMS.KmsMonitoringDisabled", "critical",
              "KMS events excluded from a trail",
              f"{ADMIN} changed trail org-trail to exclude KMS events.",
              key=None, actor=ADMIN, window=(start + 20 * hour,) * 2, evidence=[], count=0,
              pattern="BLIND_SPOT", mitre=("T1562.008",)),
    ]  # fmt: skip
    out = pl.from_arrow(pa.Table.from_pylist(rows, schema=s.ALERT_SCHEMA))
    assert isinstance(out, pl.DataFrame)
    return out


def build_lake(root: Path) -> LocalLake:
    """Write the trail under ``root/trail``, ingest it into ``root/lake``, add the alerts."""
    tree = root / "trail"
    write_tree(tree)
    lake = LocalLake(root / "lake")
    summary = ingest(LocalSource(tree), lake, IngestOptions(workers=1))
    assert not summary.objects_quarantined and not summary.records_quarantined, summary
    day_alerts = alerts()
    # Grouped as detection groups them: the admin's three changes become one incident.
    grouping = incidents.group(day_alerts, day_alerts.clear(), DAY)
    write_parquet_atomic(grouping.incidents.to_arrow().cast(s.INCIDENT_SCHEMA),
                         incidents_path(lake, DAY))  # fmt: skip
    labelled = incidents.label_alerts(day_alerts, grouping)
    write_parquet_atomic(labelled.to_arrow().cast(s.ALERT_SCHEMA), alerts_path(lake, DAY))
    return lake
