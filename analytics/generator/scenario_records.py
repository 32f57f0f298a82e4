"""Records of the labelled scenarios, emitted by the worker that generates their day.

Each scenario kind has one function that turns its plan (``ScenarioSpec``) into CloudTrail
records through the same assembly the benign traffic uses, so attack records differ from normal
ones only where the attack does: the caller, the address, the key, the volume, the errors.
Records carry their scenario id; the labels are built from exactly what was written.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

import orjson

from analytics.generator.events import (
    INCORRECT_KEY_MESSAGE,
    JsonObject,
    access_denied_message,
    deletion_date,
    kms_date,
    kms_params,
    record,
    reencrypt_params,
    reencrypt_resources,
    tls_details,
)
from analytics.generator.identities import assumed_role, kms_internal, root
from analytics.generator.organisation import GLOBAL_REGION, Key, Role, trail_name
from analytics.generator.plan import Plan, Rotation, ScenarioSpec
from analytics.generator.randomness import access_key_id, hex_string, uuid4
from analytics.generator.rhythm import iso_time
from analytics.generator.scenario_secrets import emit_bulk_secret_theft, emit_ci_secret_dump
from analytics.generator.traffic import DayTraffic
from analytics.generator.workloads import Workload

_ATTACKER_AGENT = (
    "Boto3/1.28.62 md/Botocore#1.31.62 ua/2.0 os/linux#5.15.0-1047-aws md/arch#x86_64"
    " lang/python#3.10.12 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.31.62"
)
_OLD_CLI_AGENT = (
    "aws-cli/1.18.69 Python/2.7.18 Linux/4.14.133-113.105.amzn2.x86_64 botocore/1.16.19"
)
_ADMIN_CLI_AGENT = (
    "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9"
    " md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off"
    " md/command#kms"
)
_KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
_KEY_USER_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
]


def _schedule_deletion(
    t: DayTraffic, wl: Workload, second: int, key: Key, key_ref: str, tag: str
) -> None:
    """ScheduleKeyDeletion of ``key`` (named in the request as ``key_ref``: ID or ARN, as the
    caller wrote it) with the shortest window, 7 days, as KMS records it."""
    response = {
        "keyId": key.arn,
        "deletionDate": deletion_date(t.date, 7),
        "keyState": "PendingDeletion",
        "pendingWindowInDays": 7,
    }
    t.kms_record(
        wl, second, "ScheduleKeyDeletion", key, {"keyId": key_ref, "pendingWindowInDays": 7},
        response, tag=tag,
    )  # fmt: skip


def _actor_workload(
    traffic: DayTraffic,
    principal: Role,
    wid: int,
    *,
    ip: str,
    agent: str,
    session: str = "",
    version: str = "1.11",
) -> Workload:
    """A throwaway workload so scenario calls share the traffic module's record assembly."""
    return Workload(
        wid=wid,
        category="scenario",
        family="kms",
        principal=principal,
        service=None,
        account_id=principal.account_id,
        ips=(ip,),
        agents=(agent,),
        session_name=session or "session-" + hex_string(traffic.rng, 8),
        version=version,
        session_seconds=86_400,
    )


def _workload_of(t: DayTraffic, spec: ScenarioSpec) -> Workload:
    """The standing workload a scenario hijacks or hurts."""
    assert spec.workload is not None, spec.sid
    return t.plan.workload(spec.workload)


def _spread(start: int, count: int, span: int, rng: random.Random) -> list[int]:
    return sorted(start + rng.randrange(span) for _ in range(count))


def _emit_exfiltration(t: DayTraffic, spec: ScenarioSpec) -> None:
    wl = _workload_of(t, spec)
    key = spec.keys[0]
    agent = wl.agents[0]
    for second in _spread(spec.second, spec.count, 3000, t.rng):
        params = kms_params(
            "Decrypt", key.arn, t.context(wl), decrypt_names_key=wl.decrypt_names_key
        )
        t.kms_record(
            wl,
            second,
            "Decrypt",
            key,
            params,
            None,
            ip=spec.details["ip"],
            agent=agent,
            tag=spec.sid,
        )


def _emit_failed_enumeration(t: DayTraffic, spec: ScenarioSpec) -> None:
    wl = _workload_of(t, spec)
    role = wl.principal
    assert isinstance(role, Role)
    rng = t.rng
    seconds = _spread(spec.second, spec.count, 3000, rng)
    calls = [spec.keys[i % len(spec.keys)] for i in range(spec.count)]
    rng.shuffle(calls)
    for second, key in zip(seconds, calls, strict=True):
        caller = str(t.session(wl, second)["arn"])
        own = key.account_id == role.account_id  # other accounts' keys: no policy lets it in
        roll = rng.random()
        error: tuple[str, str | None] | None
        if not own or roll < 0.55:
            message = access_denied_message(caller, "Decrypt", key.arn, identity_policy=own)
            error = ("AccessDenied", message)
        elif roll < 0.75:
            error = ("IncorrectKeyException", INCORRECT_KEY_MESSAGE)
        elif roll < 0.92:
            error = ("InvalidCiphertextException", None)
        else:
            error = None
        params = {"keyId": key.arn, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        t.kms_record(wl, second, "Decrypt", key, params, None, tag=spec.sid, error=error)


def _emit_outside_caller(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    key = spec.keys[0]
    wl = _actor_workload(t, role, 100_003, ip=spec.details["ip"], agent=_ATTACKER_AGENT)
    contexts = spec.details["contexts"]
    for second in _spread(spec.second, spec.count, 2700, t.rng):
        op = "Decrypt" if t.rng.random() < 0.8 else "GenerateDataKey"
        context = contexts[t.rng.randrange(len(contexts))] if contexts else None
        params = kms_params(op, key.arn, context)
        t.kms_record(wl, second, op, key, params, None, tag=spec.sid, owner_copy_only=True)


def _emit_disable_then_delete(t: DayTraffic, spec: ScenarioSpec) -> None:
    admin = spec.actor
    assert isinstance(admin, Role)
    key = spec.keys[0]
    wl = _actor_workload(
        t, admin, 100_004, ip="192.0.2.10", agent=_ADMIN_CLI_AGENT, session=spec.details["session"]
    )
    t.kms_record(
        wl, spec.second, "DisableKey", key, {"keyId": key.key_id}, {"keyId": key.arn}, tag=spec.sid
    )
    scheduled = spec.details["scheduled_second"]
    _schedule_deletion(t, wl, scheduled, key, key.key_id, spec.sid)
    app = _workload_of(t, spec)
    for second in _spread(scheduled + 3600, 3, 3600, t.rng):
        t.kms_call(app, second, "Decrypt", key, tag=spec.sid, benign_errors=False)


def _emit_mass_key_deletion(t: DayTraffic, spec: ScenarioSpec) -> None:
    """List the keys, then schedule each for deletion; the failures follow from the outages."""
    role = spec.actor
    assert isinstance(role, Role)
    wl = _actor_workload(
        t, role, 100_013, ip=spec.details["ip"], agent=_ATTACKER_AGENT,
        session=spec.details["session"],
    )  # fmt: skip
    first = spec.keys[0]
    t.kms_record(wl, spec.second, "ListKeys", first, {"limit": 1000}, None,
                 resources=None, tag=spec.sid)  # fmt: skip
    t.kms_record(wl, spec.second + 6, "ListAliases", first, {"limit": 100}, None,
                 resources=None, tag=spec.sid)  # fmt: skip
    for key, second in zip(spec.keys, spec.details["scheduled"], strict=True):
        t.kms_record(wl, second - 8, "DescribeKey", key, {"keyId": key.arn}, None, tag=spec.sid)
        _schedule_deletion(t, wl, second, key, key.arn, spec.sid)


def _key_policy(key: Key, plan: Plan, app: Workload, *, opened_to: str | None) -> str:
    acct = key.account_id
    statements: list[JsonObject] = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "Allow access for Key Administrators",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    plan.org.role("prod", "terraform-apply").arn,
                    plan.org.role("prod", "platform-admin").arn,
                ]
            },
            "Action": _KEY_ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "Allow use of the key",
            "Effect": "Allow",
            "Principal": {"AWS": app.actor},
            "Action": _KEY_USER_ACTIONS,
            "Resource": "*",
        },
    ]
    if opened_to is not None:
        statements.append(
            {
                "Sid": "AllowPartnerAccount",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{opened_to}:root"},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*"],
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "AllowAnyPrincipalToDecrypt",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
            }
        )
    policy = {"Version": "2012-10-17", "Id": "key-default-1", "Statement": statements}
    return orjson.dumps(policy, option=orjson.OPT_INDENT_2).decode()


def _emit_policy_opened(t: DayTraffic, spec: ScenarioSpec) -> None:
    key = spec.keys[0]
    app = _workload_of(t, spec)
    role = spec.actor
    assert isinstance(role, Role)
    wl = _actor_workload(
        t,
        role,
        100_005,
        ip=spec.details["ip"],
        agent=_ADMIN_CLI_AGENT,
        session=spec.details["session"],
    )
    t.kms_record(
        wl,
        spec.second,
        "GetKeyPolicy",
        key,
        {"keyId": key.key_id, "policyName": "default"},
        None,
        tag=spec.sid,
    )
    params = {
        "keyId": key.key_id,
        "policyName": "default",
        "policy": _key_policy(key, t.plan, app, opened_to=spec.details["outside"]),
        "bypassPolicyLockoutSafetyCheck": False,
    }
    t.kms_record(wl, spec.second + 95, "PutKeyPolicy", key, params, None, tag=spec.sid)


def _emit_policy_baseline(t: DayTraffic, spec: ScenarioSpec) -> None:
    """Terraform writing the key's normal policy, days before it is opened up (benign)."""
    key = spec.keys[0]
    app = _workload_of(t, spec)
    terraform = t.plan.org.role("prod", "terraform-apply")
    wl = _actor_workload(
        t, terraform, 100_011, ip="192.0.2.60", agent=app.agents[0], session="terraform"
    )
    params = {
        "keyId": key.arn,
        "policyName": "default",
        "policy": _key_policy(key, t.plan, app, opened_to=None),
        "bypassPolicyLockoutSafetyCheck": False,
    }
    t.kms_record(
        wl,
        spec.details["baseline_second"],
        "PutKeyPolicy",
        key,
        params,
        None,
        tag=f"{spec.sid}#baseline",
    )


def _emit_ransomware(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    new_key, *victims = spec.keys
    rng = t.rng
    wl = _actor_workload(t, role, 100_006, ip=spec.details["ip"], agent=_ATTACKER_AGENT)
    second = spec.second
    created = kms_date(t.date, second // 3600, second // 60 % 60, second % 60)
    metadata = {
        "aWSAccountId": new_key.account_id,
        "keyId": new_key.key_id,
        "arn": new_key.arn,
        "creationDate": created,
        "enabled": False,
        "description": "",
        "keyUsage": "ENCRYPT_DECRYPT",
        "keyState": "PendingImport",
        "origin": "EXTERNAL",
        "keyManager": "CUSTOMER",
        "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "keySpec": "SYMMETRIC_DEFAULT",
        "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "multiRegion": False,
    }
    create = {
        "description": "",
        "keyUsage": "ENCRYPT_DECRYPT",
        "keySpec": "SYMMETRIC_DEFAULT",
        "origin": "EXTERNAL",
        "bypassPolicyLockoutSafetyCheck": False,
        "multiRegion": False,
    }
    t.kms_record(wl, second, "CreateKey", new_key, create, {"keyMetadata": metadata}, tag=spec.sid)
    t.kms_record(
        wl,
        second + 20,
        "GetParametersForImport",
        new_key,
        {
            "keyId": new_key.key_id,
            "wrappingAlgorithm": "RSAES_OAEP_SHA_256",
            "wrappingKeySpec": "RSA_2048",
        },
        None,
        tag=spec.sid,
    )
    t.kms_record(
        wl,
        second + 45,
        "ImportKeyMaterial",
        new_key,
        {"keyId": new_key.key_id, "expirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"},
        None,
        tag=spec.sid,
    )
    for at in _spread(second + 120, spec.count, 2700, rng):
        if victims and rng.random() < 0.7:
            source = victims[rng.randrange(len(victims))]
            t.kms_record(
                wl,
                at,
                "ReEncrypt",
                source,
                reencrypt_params(source, new_key, None),
                None,
                resources=reencrypt_resources(source, new_key),
                tag=spec.sid,
            )
        else:
            t.kms_record(
                wl,
                at,
                "GenerateDataKey",
                new_key,
                {"keyId": new_key.key_id, "keySpec": "AES_256"},
                None,
                tag=spec.sid,
            )
    end = second + 120 + 2700 + 60
    _schedule_deletion(t, wl, end, new_key, new_key.key_id, spec.sid)
    t.kms_record(
        wl,
        end + 30,
        "DeleteImportedKeyMaterial",
        new_key,
        {"keyId": new_key.key_id},
        None,
        tag=spec.sid,
    )


def _emit_rotation_disabled(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    key = spec.keys[0]
    wl = _actor_workload(
        t,
        role,
        100_007,
        ip=spec.details["ip"],
        agent=_ADMIN_CLI_AGENT,
        session=spec.details["session"],
    )
    t.kms_record(
        wl, spec.second, "GetKeyRotationStatus", key, {"keyId": key.key_id}, None, tag=spec.sid
    )
    t.kms_record(
        wl,
        spec.second + 40,
        "DisableKeyRotation",
        key,
        {"keyId": key.key_id},
        {"keyId": key.arn},
        tag=spec.sid,
    )


def _emit_grant_outside(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    key = spec.keys[0]
    wl = _actor_workload(
        t, role, 100_008, ip="192.0.2.60", agent=_ATTACKER_AGENT, session="GitHubActions"
    )
    params = {
        "keyId": key.arn,
        "granteePrincipal": spec.details["grantee"],
        "operations": ["Decrypt", "GenerateDataKey", "DescribeKey"],
        "name": "partner-sync",
    }
    t.kms_record(
        wl,
        spec.second,
        "CreateGrant",
        key,
        params,
        {"grantId": hex_string(t.rng, 64), "keyId": key.arn},
        tag=spec.sid,
    )


def _emit_human_new_region(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    rng = t.rng
    wl = _actor_workload(
        t,
        role,
        100_009,
        ip=spec.details["ip"],
        agent=_OLD_CLI_AGENT,
        session=spec.details["session"],
    )
    wl = dataclasses.replace(
        wl, keys=spec.keys, contexts=({"purpose": "manual-check"},), key_ref="alias"
    )
    seconds = _spread(spec.second, spec.count, 1200, rng)
    ops = ["ListAliases", "DescribeKey", "DescribeKey"] + [
        "Decrypt" if rng.random() < 0.7 else "GenerateDataKey" for _ in seconds[3:]
    ]
    for second, op in zip(seconds, ops, strict=True):
        key = spec.keys[rng.randrange(len(spec.keys))]
        t.kms_call(wl, second, op, key, tag=spec.sid, benign_errors=False)


def _emit_root(t: DayTraffic, spec: ScenarioSpec) -> None:
    acct = spec.keys[0].account_id
    rng = t.rng
    created = iso_time(t.prefix, spec.second)
    console_identity = root(acct, access_key_id(rng, temporary=True), created)
    cli_identity = {k: v for k, v in console_identity.items() if k != "sessionContext"}
    cli_identity["accessKeyId"] = access_key_id(rng, temporary=False)
    ip = spec.details["ip"]
    login = record(
        version="1.09",
        identity={
            k: v for k, v in console_identity.items() if k not in ("accessKeyId", "sessionContext")
        },
        time=created,
        source="signin.amazonaws.com",
        name="ConsoleLogin",
        region=GLOBAL_REGION,
        ip=ip,
        agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        params=None,
        response={"ConsoleLogin": "Success"},
        additional={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "Yes",
        },
        request_id=None,
        event_id=uuid4(rng),
        read_only=False,
        resources=None,
        recipient=acct,
        event_type="AwsConsoleSignIn",
    )
    t.push(spec.second, login, spec.sid)
    # identities are passed explicitly below; the workload only carries address and agent
    stand_in = Role(acct, "root", "/", "", "root")
    wl = _actor_workload(t, stand_in, 100_010, ip=ip, agent="console")
    second = spec.second + 60
    t.kms_record(
        wl,
        second,
        "ListKeys",
        spec.keys[0],
        {"limit": 1000},
        None,
        identity=console_identity,
        tag=spec.sid,
    )
    t.kms_record(
        wl,
        second + 3,
        "ListAliases",
        spec.keys[0],
        {"limit": 100},
        None,
        identity=console_identity,
        tag=spec.sid,
    )
    for index, key in enumerate(spec.keys):
        at = second + 30 + 40 * index
        t.kms_record(
            wl,
            at,
            "DescribeKey",
            key,
            {"keyId": key.key_id},
            None,
            identity=console_identity,
            tag=spec.sid,
        )
        t.kms_record(
            wl,
            at + 8,
            "GetKeyPolicy",
            key,
            {"keyId": key.key_id, "policyName": "default"},
            None,
            identity=console_identity,
            tag=spec.sid,
        )
    cli = dataclasses.replace(wl, agents=(_ADMIN_CLI_AGENT,))
    for index in range(2):
        key = spec.keys[index % len(spec.keys)]
        t.kms_record(
            cli,
            second + 900 + 30 * index,
            "Decrypt",
            key,
            {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
            None,
            identity=cli_identity,
            tag=spec.sid,
        )


def _emit_monitoring_disabled(t: DayTraffic, spec: ScenarioSpec) -> None:
    role = spec.actor
    assert isinstance(role, Role)
    rng = t.rng
    org = t.plan.org
    region = org.home_region
    trail_arn = f"arn:aws:cloudtrail:{region}:{role.account_id}:trail/{trail_name(t.plan.org_id)}"
    selectors = [
        {
            "readWriteType": "All",
            "includeManagementEvents": True,
            "dataResources": [],
            "excludeManagementEventSources": ["kms.amazonaws.com"],
        }
    ]
    session = spec.details["login"]
    identity = assumed_role(
        role, session, access_key_id(rng, temporary=True), iso_time(t.prefix, spec.second - 600)
    )
    rec = record(
        version="1.11",
        identity=identity,
        time=iso_time(t.prefix, spec.second),
        source="cloudtrail.amazonaws.com",
        name="PutEventSelectors",
        region=region,
        ip=spec.details["ip"],
        agent=_ADMIN_CLI_AGENT,
        params={"trailName": trail_arn, "eventSelectors": selectors},
        response={"trailARN": trail_arn, "eventSelectors": selectors},
        request_id=uuid4(rng),
        event_id=uuid4(rng),
        read_only=False,
        resources=None,
        recipient=role.account_id,
        tls=tls_details("cloudtrail.amazonaws.com", region),
    )
    t.push(spec.second, rec, spec.sid)


def _emit_rotation(t: DayTraffic, rotation: Rotation) -> None:
    key = rotation.key
    details: JsonObject
    if key.rotation_details_2025:
        details = {
            "rotationType": "AUTOMATIC",
            "keyOrigin": "AWS_KMS",
            "previousKeyMaterialId": key.material_id,
            "currentKeyMaterialId": hex_string(t.rng, 64),
        }
    else:
        details = {"keyId": key.key_id}
    rec = record(
        version="1.11" if key.rotation_details_2025 else "1.08",
        identity=kms_internal(key.account_id),
        time=iso_time(t.prefix, rotation.second),
        source="kms.amazonaws.com",
        name="RotateKey",
        region=key.region,
        ip="AWS Internal",
        agent="AWS Internal",
        params=None,
        response=None,
        request_id=None,
        event_id=uuid4(t.rng),
        read_only=False,
        resources=key.resources,
        recipient=key.account_id,
        event_type="AwsServiceEvent",
        service_details=details,
    )
    t.push(rotation.second, rec, rotation.scenario_id)


_EMITTERS: dict[str, Callable[[DayTraffic, ScenarioSpec], None]] = {
    "decrypt_exfiltration": _emit_exfiltration,
    "failed_decrypt_enumeration": _emit_failed_enumeration,
    "new_outside_account_caller": _emit_outside_caller,
    "key_disabled_then_deletion": _emit_disable_then_delete,
    "key_policy_opened": _emit_policy_opened,
    "ransomware_imported_key": _emit_ransomware,
    "rotation_disabled_at_night": _emit_rotation_disabled,
    "grant_to_outside_principal": _emit_grant_outside,
    "human_3am_new_region": _emit_human_new_region,
    "root_kms_usage": _emit_root,
    "kms_monitoring_disabled": _emit_monitoring_disabled,
    "bulk_secret_theft": emit_bulk_secret_theft,
    "ci_role_secret_dump": emit_ci_secret_dump,
    "mass_key_deletion": _emit_mass_key_deletion,
}


def emit_scenarios(t: DayTraffic) -> None:
    """Push the day's scenario records (and rotations, and scenario baselines) into ``t``."""
    for spec in t.plan.scenarios:
        if spec.kind == "key_policy_opened" and spec.details.get("baseline_day") == t.day:
            _emit_policy_baseline(t, spec)
        if spec.day == t.day and spec.kind in _EMITTERS:
            _EMITTERS[spec.kind](t, spec)
    for rotation in t.plan.rotations:
        if rotation.day == t.day:
            _emit_rotation(t, rotation)
