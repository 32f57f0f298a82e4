"""Benign traffic for one day: the organisation's standing workloads, hour by hour.

The day's budget is split over hours by the diurnal curve and, inside each hour, over the
workloads that run at that hour in proportion to their weights (multinomial draws, so totals are
exact). Each workload then emits its calls with its own identities, addresses, user agents and
encryption contexts. This is the hot path: records are plain dicts assembled from shared
sub-objects (identities, ``resources``, ``tlsDetails``) and dumped later by orjson.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from datetime import timedelta

import numpy as np

from analytics.generator.events import (
    AWS_INTERNAL,
    CRYPTO_OPS,
    KMS,
    KMS_READ_ONLY,
    JsonObject,
    Record,
    benign_kms_error,
    key_reference,
    kms_date,
    kms_params,
    kms_resources,
    record,
    reencrypt_params,
    reencrypt_resources,
    tls_details,
    with_error,
    with_shared_event_id,
)
from analytics.generator.identities import (
    Identity,
    assumed_role,
    aws_service,
    federated_user,
    iam_user,
    identity_center_user,
    identity_center_user_id,
    web_identity_user,
)
from analytics.generator.organisation import BROWSER_AGENT, GLOBAL_REGION, Key, Role, User
from analytics.generator.plan import (
    Emitted,
    KeyOutage,
    Plan,
    WorkloadTag,
    consequence_of,
    weight_matrix,
)
from analytics.generator.randomness import access_key_id, hex_string, uuid4
from analytics.generator.rhythm import day_epoch, hour_shares, iso_from_epoch, iso_time
from analytics.generator.workloads import Workload

KMS_ERROR_RATE = 0.007
OTHER_ERROR_RATE = 0.005
_SYMMETRIC_ONLY = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncrypt",
        "GetKeyRotationStatus",
        "EnableKeyRotation",
    }
)
_RDS_GRANT_OPERATIONS = [
    "Decrypt",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
]
_EC2_PARAMS: dict[str, JsonObject] = {
    "DescribeInstances": {"instancesSet": {}, "filterSet": {}},
    "DescribeVolumes": {"volumeSet": {}, "filterSet": {}},
    "DescribeSecurityGroups": {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}},
    "DescribeSubnets": {"subnetSet": {}, "filterSet": {}},
}


def _assumed_role_arn(role: Role, session: str) -> str:
    return f"arn:aws:sts::{role.account_id}:assumed-role/{role.name}/{session}"


class DayTraffic:
    """Generates one day's benign records for a plan; also used by scenarios for sessions."""

    def __init__(
        self, plan: Plan, day: int, rng: random.Random, nprng: np.random.Generator
    ) -> None:
        self.plan = plan
        self.day = day
        self.date = plan.date_of(day)
        self.epoch0 = day_epoch(plan.start, day)
        self.prefix = f"{self.date.isoformat()}T"
        self.date_path = f"{self.date:%Y/%m/%d}/"
        self.rng = rng
        self.nprng = nprng
        self.out: list[Emitted] = []
        self._sessions: dict[tuple[int, int], Identity] = {}
        self._task_ids: dict[int, str] = {}
        self._outages: dict[str, list[KeyOutage]] = {}
        for outage in sorted(plan.outages, key=lambda o: o.start_epoch):
            self._outages.setdefault(outage.key_arn, []).append(outage)
        self._tags: dict[int, list[WorkloadTag]] = {}
        for tag in plan.tags:
            if tag.first_day <= day <= tag.last_day:
                self._tags.setdefault(tag.wid, []).append(tag)
        self._emitters: dict[str, Callable[[Workload, list[int]], None]] = {
            "kms": self._kms,
            "s3": self._s3,
            "sts": self._sts,
            "webid": self._webid,
            "ec2": self._ec2,
            "iam": self._iam,
            "signin": self._signin,
            "sso": self._sso,
        }

    # --- volume ---------------------------------------------------------------------------

    def hourly_counts(self, budget: int) -> np.ndarray:
        """Records per workload per hour for the day's benign budget."""
        plan, nprng = self.plan, self.nprng
        weights = weight_matrix(plan.workloads, self.date, self.day)
        counts = np.zeros(weights.shape, dtype=np.int64)
        per_hour = nprng.multinomial(max(budget, 0), hour_shares(self.date))
        for hour in range(24):
            column = weights[:, hour]
            total = column.sum()
            if total > 0 and per_hour[hour] > 0:
                counts[:, hour] = nprng.multinomial(int(per_hour[hour]), column / total)
        for boost in plan.boosts:
            if boost.day == self.day:
                span = slice(boost.first_hour, boost.end_hour)
                counts[boost.wid, span] = np.rint(counts[boost.wid, span] * boost.factor)
        if self.day in plan.batch_days:
            for wl in plan.workloads:
                if wl.schedule == "monthly":
                    counts[wl.wid, 1:4] = np.diff(np.linspace(0, wl.run_records, 4).round())
        return counts

    def emit(self, budget: int) -> list[Emitted]:
        counts = self.hourly_counts(budget)
        for wl in self.plan.workloads:
            row = counts[wl.wid]
            total = int(row.sum())
            if total == 0:
                continue
            if wl.family == "kms" and wl.keys and wl.keys[0].account_id != wl.account_id:
                row = (row + 1) // 2  # each cross-account call is logged twice
                total = int(row.sum())
            offsets = self.nprng.integers(0, 3600, size=total)
            seconds = np.sort(np.repeat(np.arange(24) * 3600, row) + offsets).tolist()
            self._emitters[wl.family](wl, seconds)
        return self.out

    # --- shared helpers -------------------------------------------------------------------

    def tag_for(self, wl: Workload, second: int) -> str | None:
        tags = self._tags.get(wl.wid)
        if tags:
            hour = second // 3600
            for tag in tags:
                if tag.first_hour <= hour < tag.end_hour:
                    return tag.scenario_id
        return None

    def session(self, wl: Workload, second: int) -> Identity:
        """The identity of the credential session covering this second (shared dict)."""
        index = second // wl.session_seconds
        cache_key = (wl.wid, index)
        found = self._sessions.get(cache_key)
        if found is None:
            found = self._new_session(wl, index)
            self._sessions[cache_key] = found
        return found

    def _new_session(self, wl: Workload, index: int) -> Identity:
        rng = self.rng
        if wl.principal is None:
            return aws_service(wl.service or AWS_INTERNAL)
        start = self.epoch0 + index * wl.session_seconds - rng.randrange(30, 900)
        created = iso_from_epoch(start)
        if isinstance(wl.principal, User):
            if wl.identity_kind == "federated":
                key = access_key_id(rng, temporary=True)
                return federated_user(wl.principal, wl.session_name, key, created)
            return iam_user(wl.principal, invoked_by=wl.via)
        name = wl.session_name or self._task_id(wl)
        return assumed_role(
            wl.principal,
            name,
            access_key_id(rng, temporary=True),
            created,
            invoked_by=wl.via,
        )

    def _task_id(self, wl: Workload) -> str:
        """ECS task ids stay for the day (tasks are replaced by deployments)."""
        found = self._task_ids.get(wl.wid)
        if found is None:
            found = hex_string(self.rng, 32)
            self._task_ids[wl.wid] = found
        return found

    def source(self, wl: Workload) -> tuple[str, str, bool]:
        """(sourceIPAddress, userAgent, direct) for one call of the workload."""
        if wl.via is not None:
            return wl.via, wl.via, False
        if wl.principal is None:
            service = wl.service or AWS_INTERNAL
            return service, service, False
        rng = self.rng
        ips, agents = wl.ips, wl.agents
        ip = ips[0] if len(ips) == 1 else ips[rng.randrange(len(ips))]
        agent = agents[0] if len(agents) == 1 else agents[rng.randrange(len(agents))]
        return ip, agent, True

    def context(self, wl: Workload) -> JsonObject | None:
        if wl.object_prefix is not None:
            obj = f"{wl.object_prefix}{self.date_path}part-{hex_string(self.rng, 12)}.parquet"
            if wl.contexts:
                return {**wl.contexts[0], "aws:s3:arn": obj}
            return {"aws:s3:arn": obj}
        contexts = wl.contexts
        if not contexts:
            return None
        return contexts[0] if len(contexts) == 1 else contexts[self.rng.randrange(len(contexts))]

    def push(self, second: int, rec: Record, tag: str | None) -> None:
        self.out.append((self.epoch0 + second, rec, tag))

    # --- KMS ------------------------------------------------------------------------------

    def _kms(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        ops = rng.choices(wl.ops, cum_weights=wl.cumulative_weights, k=len(seconds))
        keys = wl.keys
        for second, op in zip(seconds, ops, strict=True):
            key = keys[0] if len(keys) == 1 else keys[rng.randrange(len(keys))]
            self.kms_call(wl, second, op, key)

    def kms_call(
        self,
        wl: Workload,
        second: int,
        op: str,
        key: Key,
        *,
        tag: str | None = None,
        error: tuple[str, str | None] | None = None,
        benign_errors: bool = True,
    ) -> list[Record]:
        """Emit one everyday KMS call of a workload (two records across accounts)."""
        if key.spec != "SYMMETRIC_DEFAULT" and op in _SYMMETRIC_ONLY:
            op = "DescribeKey"
        context = self.context(wl)
        response: JsonObject | None = None
        resources = kms_resources(op, key)
        if op == "ReEncrypt":
            destination = wl.keys[(wl.keys.index(key) + 1) % len(wl.keys)]
            params: JsonObject | None = reencrypt_params(key, destination, context)
            resources = reencrypt_resources(key, destination)
        elif op == "CreateGrant":
            params, response = self._grant(wl, key)
        elif op == "TagResource":
            params = {
                "keyId": key_reference(key, wl.key_ref),
                "tags": [
                    {"tagKey": "cost-center", "tagValue": f"cc-{self.rng.randrange(1000, 9999)}"}
                ],
            }
        elif op == "EnableKeyRotation":
            params = {"keyId": key_reference(key, wl.key_ref), "rotationPeriodInDays": 365}
            response = {"keyId": key.arn}
        else:
            ref = key.arn if key.account_id != wl.account_id else key_reference(key, wl.key_ref)
            params = kms_params(op, ref, context, decrypt_names_key=wl.decrypt_names_key)
        return self.kms_record(
            wl,
            second,
            op,
            key,
            params,
            response,
            resources=resources,
            tag=tag,
            error=error,
            benign_errors=benign_errors,
        )

    def kms_record(
        self,
        wl: Workload,
        second: int,
        op: str,
        key: Key,
        params: JsonObject | None,
        response: JsonObject | None,
        *,
        resources: list[dict[str, str]] | None = None,
        identity: Identity | None = None,
        ip: str | None = None,
        agent: str | None = None,
        tag: str | None = None,
        error: tuple[str, str | None] | None = None,
        benign_errors: bool = False,
        owner_copy_only: bool = False,
    ) -> list[Record]:
        """Emit a KMS record with explicit parameters; adds the key owner's copy across accounts."""
        rng = self.rng
        ident = identity if identity is not None else self.session(wl, second)
        src_ip, src_agent, direct = self.source(wl)
        ip = ip if ip is not None else src_ip
        agent = agent if agent is not None else src_agent
        console = agent == "console"
        if console:
            agent = AWS_INTERNAL
        caller = str(ident.get("accountId", wl.account_id))
        vpce = (
            self.plan.org.vpc_endpoints.get(f"{caller}:{key.region}")
            if ip.startswith("10.")
            else None
        )
        rec = record(
            version=wl.version,
            identity=ident,
            time=iso_time(self.prefix, second),
            source=KMS,
            name=op,
            region=key.region,
            ip=ip,
            agent=agent,
            params=params,
            response=response,
            request_id=uuid4(rng),
            event_id=uuid4(rng),
            read_only=op in KMS_READ_ONLY,
            resources=resources if resources is not None else kms_resources(op, key),
            recipient=caller,
            tls=tls_details(KMS, key.region, legacy=wl.legacy_tls)
            if direct and not console
            else None,
            vpce=vpce,
            console=console,
        )
        if tag is None:
            tag = self.tag_for(wl, second)
        if error is None and op in CRYPTO_OPS:
            outage = self._outage(key, self.epoch0 + second)
            if outage is not None:
                error = (outage.error_code, outage.message)
                tag = consequence_of(outage.scenario_id) if outage.scenario_id else tag
        if error is None and benign_errors and rng.random() < KMS_ERROR_RATE:
            error = benign_kms_error(op, key, str(ident.get("arn", wl.service or "")), rng)
        if error is not None:
            rec = with_error(rec, *error)
        records = [rec]
        if key.account_id != caller and not (error and error[0] == "AccessDenied"):
            # the key owner's trail gets its own copy; denied calls stay in the caller's only
            records[0] = with_shared_event_id(rec, uuid4(rng))
            owner = dict(records[0])
            owner["eventID"] = uuid4(rng)
            owner["recipientAccountId"] = key.account_id
            owner.pop("vpcEndpointId", None)
            records = [owner] if owner_copy_only else [records[0], owner]
        for item in records:
            self.push(second, item, tag)
        return records

    def _outage(self, key: Key, epoch: int) -> KeyOutage | None:
        phases = self._outages.get(key.arn)
        if not phases:
            return None
        current = None
        for phase in phases:
            if phase.start_epoch <= epoch:
                current = phase
        return current

    def _grant(self, wl: Workload, key: Key) -> tuple[JsonObject, JsonObject]:
        service = f"{(wl.via or 'rds.amazonaws.com').split('.')[0]}.{key.region}.amazonaws.com"
        params: JsonObject = {
            "keyId": key.arn,
            "granteePrincipal": service,
            "retiringPrincipal": service,
            "operations": _RDS_GRANT_OPERATIONS,
            "constraints": {
                "encryptionContextSubset": {
                    "aws:rds:db-id": f"db-{hex_string(self.rng, 26).upper()}"
                }
            },
        }
        return params, {"grantId": hex_string(self.rng, 64), "keyId": key.arn}

    # --- other services -------------------------------------------------------------------

    def _maybe_fail(self, rec: Record, code: str, message: str | None) -> Record:
        if self.rng.random() < OTHER_ERROR_RATE:
            return with_error(rec, code, message)
        return rec

    def _s3(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        bucket, _, folder = (wl.object_prefix or "bucket/").partition("/")
        region = wl.region
        tls = tls_details("s3.amazonaws.com", region)
        host = f"{bucket}.s3.{region}.amazonaws.com"
        bucket_resource = {
            "accountId": wl.account_id,
            "type": "AWS::S3::Bucket",
            "ARN": f"arn:aws:s3:::{bucket}",
        }
        key_arn = wl.keys[0].arn if wl.keys else None
        ops = rng.choices(wl.ops, cum_weights=wl.cumulative_weights, k=len(seconds))
        for second, op in zip(seconds, ops, strict=True):
            obj = f"{folder}{self.date_path}part-{hex_string(rng, 12)}.parquet"
            ip, agent, _ = self.source(wl)
            size = rng.randrange(2_000, 4_000_000)
            put = op == "PutObject"
            response = (
                {
                    "x-amz-server-side-encryption": "aws:kms",
                    "x-amz-server-side-encryption-aws-kms-key-id": key_arn,
                }
                if put
                else None
            )
            rec = record(
                version=wl.version,
                identity=self.session(wl, second),
                time=iso_time(self.prefix, second),
                source="s3.amazonaws.com",
                name=op,
                region=region,
                ip=ip,
                agent=agent,
                params={"bucketName": bucket, "Host": host, "key": obj},
                response=response,
                additional={
                    "SignatureVersion": "SigV4",
                    "CipherSuite": tls["cipherSuite"],
                    "bytesTransferredIn": size if put else 0,
                    "AuthenticationMethod": "AuthHeader",
                    "bytesTransferredOut": 0 if put else size,
                },
                request_id=hex_string(rng, 16).upper(),
                event_id=uuid4(rng),
                read_only=not put,
                resources=[
                    {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{obj}"},
                    bucket_resource,
                ],
                recipient=wl.account_id,
                management=False,
                category="Data",
                tls=tls,
                vpce=self.plan.org.vpc_endpoints.get(f"{wl.account_id}:{region}")
                if ip.startswith("10.")
                else None,
            )
            self.push(
                second,
                self._maybe_fail(rec, "AccessDenied", "Access Denied"),
                self.tag_for(wl, second),
            )

    def _credentials(self, second: int, hours: int = 1) -> JsonObject:
        rng = self.rng
        expires = self.date + timedelta(seconds=second + hours * 3600)
        hour, rest = divmod((second + hours * 3600) % 86_400, 3600)
        return {
            "accessKeyId": access_key_id(rng, temporary=True),
            "sessionToken": base64.b64encode(rng.randbytes(270)).decode(),
            "expiration": kms_date(expires, hour, rest // 60, rest % 60),
        }

    def _sts(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        service = wl.service or "ecs-tasks.amazonaws.com"
        identity = aws_service(service)
        for second in seconds:
            role = wl.targets[rng.randrange(len(wl.targets))]
            session = (
                hex_string(rng, 32)
                if service.startswith("ecs")
                else f"{role.name}-{rng.randrange(10**9)}"
            )
            rec = record(
                version=wl.version,
                identity=identity,
                time=iso_time(self.prefix, second),
                source="sts.amazonaws.com",
                name="AssumeRole",
                region=wl.region,
                ip=service,
                agent=service,
                params={"roleArn": role.arn, "roleSessionName": session},
                response={
                    "credentials": self._credentials(second),
                    "assumedRoleUser": {
                        "assumedRoleId": f"{role.role_id}:{session}",
                        "arn": _assumed_role_arn(role, session),
                    },
                },
                request_id=uuid4(rng),
                event_id=uuid4(rng),
                read_only=True,
                resources=[
                    {"accountId": role.account_id, "type": "AWS::IAM::Role", "ARN": role.arn}
                ],
                recipient=role.account_id,
            )
            self.push(second, rec, None)

    def _webid(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        subject = wl.subject
        identity = web_identity_user(wl.account_id, subject)
        provider = str(identity["identityProvider"])
        tls = tls_details("sts.amazonaws.com", wl.region)
        for second in seconds:
            role = wl.targets[rng.randrange(len(wl.targets))]
            rec = record(
                version=wl.version,
                identity=identity,
                time=iso_time(self.prefix, second),
                source="sts.amazonaws.com",
                name="AssumeRoleWithWebIdentity",
                region=wl.region,
                ip=wl.ips[rng.randrange(len(wl.ips))],
                agent=wl.agents[0],
                params={
                    "roleArn": role.arn,
                    "roleSessionName": "GitHubActions",
                    "durationSeconds": 3600,
                },
                response={
                    "credentials": self._credentials(second),
                    "subjectFromWebIdentityToken": subject,
                    "assumedRoleUser": {
                        "assumedRoleId": f"{role.role_id}:GitHubActions",
                        "arn": _assumed_role_arn(role, "GitHubActions"),
                    },
                    "provider": provider,
                    "audience": "sts.amazonaws.com",
                },
                request_id=uuid4(rng),
                event_id=uuid4(rng),
                read_only=True,
                resources=[
                    {"accountId": role.account_id, "type": "AWS::IAM::Role", "ARN": role.arn}
                ],
                recipient=wl.account_id,
                tls=tls,
            )
            self.push(second, rec, None)

    def _simple_read(
        self, wl: Workload, seconds: list[int], source: str, *, regional: bool
    ) -> None:
        """EC2 Describe* and IAM List*/Get*: reads whose response CloudTrail does not log."""
        rng = self.rng
        region = wl.region
        tls = tls_details(source, region if regional else None)
        ops = rng.choices(wl.ops, cum_weights=wl.cumulative_weights, k=len(seconds))
        iam = source == "iam.amazonaws.com"
        for second, op in zip(seconds, ops, strict=True):
            ip, agent, _ = self.source(wl)
            console = agent == "console"
            if console:
                agent = AWS_INTERNAL
            if iam:
                target = wl.targets[rng.randrange(len(wl.targets))] if wl.targets else None
                params: JsonObject | None = (
                    {"roleName": target.name}
                    if target is not None and op.startswith(("GetRole", "ListAttached"))
                    else None
                )
            else:
                params = _EC2_PARAMS.get(op, {})
            rec = record(
                version=wl.version,
                identity=self.session(wl, second),
                time=iso_time(self.prefix, second),
                source=source,
                name=op,
                region=region,
                ip=ip,
                agent=agent,
                params=params,
                response=None,
                request_id=uuid4(rng),
                event_id=uuid4(rng),
                read_only=True,
                resources=None,
                recipient=wl.account_id,
                tls=None if console else tls,
                console=console,
            )
            if iam:
                rec = self._maybe_fail(rec, "AccessDenied", None)
            else:
                rec = self._maybe_fail(
                    rec,
                    "Client.UnauthorizedOperation",
                    "You are not authorized to perform this operation.",
                )
            self.push(second, rec, None)

    def _ec2(self, wl: Workload, seconds: list[int]) -> None:
        self._simple_read(wl, seconds, "ec2.amazonaws.com", regional=True)

    def _iam(self, wl: Workload, seconds: list[int]) -> None:
        self._simple_read(wl, seconds, "iam.amazonaws.com", regional=False)

    def _signin(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        for second in seconds:
            identity = self.session(wl, second)
            if isinstance(wl.principal, Role | User):
                identity = {k: v for k, v in identity.items() if k != "accessKeyId"}
            rec = record(
                version=wl.version,
                identity=identity,
                time=iso_time(self.prefix, second),
                source="signin.amazonaws.com",
                name="ConsoleLogin",
                region=GLOBAL_REGION,
                ip=wl.ips[rng.randrange(len(wl.ips))],
                agent=BROWSER_AGENT,
                params=None,
                response={"ConsoleLogin": "Success"},
                additional={
                    "LoginTo": "https://console.aws.amazon.com/console/home",
                    "MobileVersion": "No",
                    "MFAUsed": "Yes" if isinstance(wl.principal, User) else "No",
                },
                request_id=None,
                event_id=uuid4(rng),
                read_only=False,
                resources=None,
                recipient=wl.account_id,
                event_type="AwsConsoleSignIn",
            )
            self.push(second, rec, None)

    def _sso(self, wl: Workload, seconds: list[int]) -> None:
        rng = self.rng
        store_id = wl.identity_store
        humans = self.plan.org.humans
        accounts = self.plan.org.accounts
        ops = rng.choices(wl.ops, cum_weights=wl.cumulative_weights, k=len(seconds))
        for second, op in zip(seconds, ops, strict=True):
            index = rng.randrange(len(humans))
            user_id = identity_center_user_id(store_id, humans[index].login)
            identity = identity_center_user(wl.account_id, user_id, store_id, hex_string(rng, 40))
            account = accounts[rng.randrange(len(accounts))].account_id
            params = None if op == "ListAccounts" else {"accountId": account}
            rec = record(
                version=wl.version,
                identity=identity,
                time=iso_time(self.prefix, second),
                source="sso.amazonaws.com",
                name=op,
                region=wl.region,
                ip=humans[index].ips[0],
                agent=wl.agents[0],
                params=params,
                response=None,
                request_id=uuid4(rng),
                event_id=uuid4(rng),
                read_only=op != "Federate",
                resources=None,
                recipient=wl.account_id,
            )
            self.push(second, rec, None)
