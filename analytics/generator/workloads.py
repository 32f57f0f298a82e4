"""Who calls what, how often and from where: the organisation's standing traffic mix.

A workload is one principal doing one kind of thing (an app decrypting its data key, S3
encrypting objects with a bucket key on a role's behalf, a person browsing keys in the console).
Its weight is its share of all records. Shares are fixed per category (direct app calls,
service-mediated calls, AWS services, people, non-KMS events …) and split inside each category
with a Zipf law, so a few heavy hitters make most calls and a long tail makes the rest.
"""

from __future__ import annotations

import base64
import itertools
import random
from dataclasses import dataclass
from typing import Any

from analytics.generator.events import JsonObject
from analytics.generator.organisation import (
    BATCH_AGENT,
    BROWSER_AGENT,
    CI_AGENT,
    GLOBAL_REGION,
    GLUE_AGENT,
    REPORTING_AGENT,
    SCANNER_AGENT,
    Account,
    Key,
    Organisation,
    Role,
    User,
    vpc_ips,
)
from analytics.generator.randomness import hex_string, rng_for, uuid4

S3_SERVICE = "s3.amazonaws.com"
SECRETS_SERVICE = "secretsmanager.amazonaws.com"
SSM_VIA = "AWS Internal"  # Parameter Store decrypts SecureStrings as "AWS Internal"
RUNNER_IPS = ("192.0.2.60", "192.0.2.61")
GITHUB_OIDC_AGENT = (
    "aws-sdk-js/3.600.0 ua/2.1 os/linux#6.5.0-1022-azure lang/js md/nodejs#20.13.1"
    " api/sts#3.600.0 configure-aws-credentials-for-github-actions"
)

# share of all records per category (KMS ≈ 86 %)
_SHARES = {
    "app-direct": 0.26,
    "via-s3": 0.18,
    "via-secrets": 0.09,
    "via-ssm": 0.05,
    "aws-service": 0.09,
    "cross-account": 0.05,
    "signing": 0.04,
    "ci-admin": 0.025,
    "humans-kms": 0.015,
    "batch": 0.015,
    "sts": 0.04,
    "s3-data": 0.05,
    "ec2": 0.02,
    "iam": 0.015,
    "signin": 0.003,
    "webid": 0.007,
    "sso": 0.005,
}
_ZIPF_EXPONENT = 1.1


@dataclass(frozen=True)
class Workload:
    """One principal's standing activity; ``weight`` is its share of all records."""

    wid: int
    category: str
    family: str  # kms, s3, sts, webid, ec2, iam, signin, sso
    principal: Role | User | None  # None for AWS service principals and portal users
    service: str | None  # the AWS service principal (AWSService) or the caller for sts
    account_id: str  # account the caller belongs to
    keys: tuple[Key, ...] = ()
    ops: tuple[str, ...] = ("Decrypt",)
    op_weights: tuple[float, ...] = (1.0,)
    ips: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    via: str | None = None  # service calling with the principal's credentials
    schedule: str = "continuous"  # continuous, office, nightly
    weight: float = 0.0
    contexts: tuple[JsonObject, ...] = ()
    object_prefix: str | None = None  # per-call S3 object encryption context / object key
    key_ref: str = "arn"
    version: str = "1.08"
    session_seconds: int = 3600
    session_name: str = ""  # fixed session name; empty: derived per session
    region: str = GLOBAL_REGION  # for non-KMS families
    legacy_tls: bool = False
    decrypt_names_key: bool = False
    console: bool = False  # the principal works in the console
    active_from_day: int = 0
    ramp_days: int = 0
    targets: tuple[Role, ...] = ()  # roles assumed (sts) or target of grants
    identity_store: str = ""  # Identity Center store id of portal users
    subject: str = ""  # OIDC subject of web-identity callers
    identity_kind: str = "default"  # "federated": a GetFederationToken session of the user
    run_records: int = 0  # schedule "monthly": records per run

    @property
    def cumulative_weights(self) -> tuple[float, ...]:
        return tuple(itertools.accumulate(self.op_weights))

    @property
    def actor(self) -> str:
        """The label ``actor`` convention for this workload's principal."""
        if self.principal is not None:
            return self.principal.arn
        return f"service:{self.service}"


def _pick_version(rng: random.Random) -> str:
    return rng.choices(("1.08", "1.09", "1.10", "1.11"), weights=(2, 3, 2, 3))[0]


def _zipf(count: int, rng: random.Random) -> list[float]:
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    raw = [1.0 / r**_ZIPF_EXPONENT for r in ranks]
    total = sum(raw)
    return [w / total for w in raw]


class _Draft:
    """Collects workload field sets per category, then assigns weights and ids."""

    def __init__(self, org: Organisation, rng: random.Random) -> None:
        self.org = org
        self.rng = rng
        self.by_category: dict[str, list[tuple[float, dict[str, Any]]]] = {c: [] for c in _SHARES}

    def add(self, category: str, *, relative: float = 1.0, **fields: Any) -> None:
        """A workload of the category; ``relative`` scales its Zipf share inside it."""
        fields.setdefault("version", _pick_version(self.rng))
        self.by_category[category].append((relative, fields))

    def build(self) -> list[Workload]:
        out: list[Workload] = []
        for category, drafts in self.by_category.items():
            if not drafts:
                continue
            zipf = _zipf(len(drafts), self.rng)
            raw = [z * relative for z, (relative, _) in zip(zipf, drafts, strict=True)]
            total = sum(raw)
            for (_, fields), share in zip(drafts, raw, strict=True):
                weight = _SHARES[category] * share / total
                out.append(Workload(wid=len(out), category=category, weight=weight, **fields))
        return out


def _contexts_for(
    app_name: str, style: str, account: str, rng: random.Random
) -> tuple[JsonObject, ...]:
    """A few encryption-context shapes an application sends (stable per app)."""
    if style == "esdk":
        return tuple(
            {
                "aws-crypto-public-key": base64.b64encode(b"\x02" + rng.randbytes(48)).decode(),
                "app": app_name,
            }
            for _ in range(3)
        )
    if style == "department":
        return tuple(
            {"Department": d} for d in rng.sample(["finance", "sales", "hr", "ops", "legal"], 3)
        )
    if style == "tenant":
        return tuple(
            {"app": app_name, "tenant": f"t-{rng.randrange(10_000):04d}"} for _ in range(8)
        )
    return tuple(
        {"resource": f"arn:aws:dynamodb:{rng.choice(['table', 'stream'])}:{account}:{app_name}-{i}"}
        for i in range(2)
    )


def build_workloads(org: Organisation, trail: str) -> tuple[Workload, ...]:
    """The standing traffic of ``org`` (deterministic from its seed); ``trail`` is its name."""
    rng = rng_for(org.seed, "workloads")
    draft = _Draft(org, rng)
    prod = org.account("prod")
    shared = org.account("shared-services")
    staging = org.account("staging")
    home = org.home_region

    _apps(draft, org, rng, prod, staging)
    _service_mediated(draft, org, rng, prod, staging)
    _aws_services(draft, org, trail)
    _cross_account(draft, org, rng, shared, staging)
    _signing_and_batch(draft, org, rng, prod)
    _ci_and_admin(draft, org, rng, home)
    _humans(draft, org, rng, prod)
    _non_kms(draft, org, rng, prod)
    return tuple(draft.build())


def _session_name(runtime: str, app: str, rng: random.Random) -> str:
    if runtime == "lambda":
        return f"{app}-handler"
    if runtime == "ec2":
        return f"i-0{hex_string(rng, 16)}"
    return ""  # ECS task ids change with each deployment: drawn per day


def _apps(
    draft: _Draft, org: Organisation, rng: random.Random, prod: Account, staging: Account
) -> None:
    for app in org.apps:
        contexts = _contexts_for(app.name, app.context_style, prod.account_id, rng)
        common: dict[str, Any] = {
            "family": "kms",
            "principal": app.role,
            "service": None,
            "account_id": prod.account_id,
            "ips": app.ips,
            "agents": (app.agent,),
            "contexts": contexts,
            "key_ref": rng.choice(("arn", "alias", "id")),
            "session_name": _session_name(app.runtime, app.name, rng),
            "legacy_tls": "java/2.25" in app.agent.lower(),
            "decrypt_names_key": rng.random() < 0.15,
        }
        draft.add(
            "app-direct",
            keys=app.keys,
            ops=("Decrypt", "GenerateDataKey", "Encrypt", "GenerateDataKeyWithoutPlaintext"),
            op_weights=(0.62, 0.25, 0.08, 0.05),
            **common,
        )
        if app.staging_role is not None and app.staging_key is not None:
            staged = dict(common)
            staged.update(
                principal=app.staging_role,
                account_id=staging.account_id,
                ips=vpc_ips(staging, 2, rng),
            )
            draft.add(
                "app-direct",
                relative=0.12,
                keys=(app.staging_key,),
                ops=("Decrypt", "GenerateDataKey", "Encrypt"),
                op_weights=(0.6, 0.3, 0.1),
                **staged,
            )


def _service_mediated(
    draft: _Draft, org: Organisation, rng: random.Random, prod: Account, staging: Account
) -> None:
    """S3 SSE-KMS, Secrets Manager and Parameter Store calling KMS with the app's credentials."""
    lake = org.key("prod", "alias/s3-datalake")
    bucket = f"{org.company}-datalake-{prod.account_id[-4:]}"
    s3_users = [a.role for a in org.apps[: rng.randint(3, 5)]]
    s3_users.append(org.role("prod", "datalake-reader"))
    for role in s3_users:
        folder = role.name.removesuffix("-service")
        draft.add(
            "via-s3",
            family="kms",
            principal=role,
            service=None,
            account_id=prod.account_id,
            keys=(lake,),
            ops=("Decrypt", "GenerateDataKey"),
            op_weights=(0.65, 0.35) if "reader" not in role.name else (0.98, 0.02),
            via=S3_SERVICE,
            object_prefix=f"arn:aws:s3:::{bucket}/{folder}/",
            key_ref="arn",
        )
    stage_key = org.key("staging", "alias/s3-staging")
    stage_bucket = f"{org.company}-staging-uploads-{staging.account_id[-4:]}"
    for app in org.apps:
        if app.staging_role is not None:
            draft.add(
                "via-s3",
                family="kms",
                principal=app.staging_role,
                service=None,
                account_id=staging.account_id,
                keys=(stage_key,),
                ops=("Decrypt", "GenerateDataKey"),
                op_weights=(0.5, 0.5),
                via=S3_SERVICE,
                object_prefix=f"arn:aws:s3:::{stage_bucket}/{app.name}/",
                relative=0.1,
            )
    if org.has_account("data"):
        data = org.account("data")
        analytics_key = org.key("data", "alias/analytics-lake")
        draft.add(
            "via-s3",
            family="kms",
            principal=org.role("data", "athena-query"),
            service=None,
            account_id=data.account_id,
            keys=(analytics_key,),
            ops=("Decrypt", "GenerateDataKey"),
            op_weights=(0.9, 0.1),
            via=S3_SERVICE,
            object_prefix=f"arn:aws:s3:::{org.company}-analytics-{data.account_id[-4:]}/curated/",
        )

    secrets_key = org.key("prod", "alias/secrets-manager")
    ssm_key = org.key("prod", "alias/ssm-parameters")
    for app in org.apps:
        secret_prefix = f"arn:aws:secretsmanager:{secrets_key.region}:{prod.account_id}:secret:"
        secrets = tuple(
            {
                "SecretARN": f"{secret_prefix}{app.name}/{name}-{hex_string(rng, 6)}",
                "SecretVersionId": uuid4(rng),
            }
            for name in ("db-credentials", "api-token")
        )
        draft.add(
            "via-secrets",
            family="kms",
            principal=app.role,
            service=None,
            account_id=prod.account_id,
            keys=(secrets_key,),
            ops=("Decrypt",),
            op_weights=(1.0,),
            via=SECRETS_SERVICE,
            contexts=secrets,
        )
        parameter_prefix = f"arn:aws:ssm:{ssm_key.region}:{prod.account_id}:parameter/{app.name}"
        params = tuple(
            {"PARAMETER_ARN": f"{parameter_prefix}/{p}"}
            for p in ("db/password", "feature-flags/signing-secret", "smtp/password")
        )
        draft.add(
            "via-ssm",
            family="kms",
            principal=app.role,
            service=None,
            account_id=prod.account_id,
            keys=(ssm_key,),
            ops=("Decrypt",),
            op_weights=(1.0,),
            via=SSM_VIA,
            contexts=params,
        )
    rotation_secret = (
        {
            "SecretARN": f"arn:aws:secretsmanager:{secrets_key.region}:{prod.account_id}:secret:"
            f"{org.apps[0].name}/db-credentials-{hex_string(rng, 6)}",
            "SecretVersionId": uuid4(rng),
        },
    )
    draft.add(
        "via-secrets",
        family="kms",
        principal=org.role("prod", "secrets-rotation-lambda"),
        service=None,
        account_id=prod.account_id,
        keys=(secrets_key,),
        ops=("GenerateDataKey", "Decrypt"),
        op_weights=(0.5, 0.5),
        via=SECRETS_SERVICE,
        contexts=rotation_secret,
        relative=0.05,
    )
    ci_key = org.key("shared-services", "alias/ci-secrets")
    shared = org.account("shared-services")
    draft.add(
        "via-secrets",
        family="kms",
        principal=org.role("shared-services", "github-actions-deploy"),
        service=None,
        account_id=shared.account_id,
        keys=(ci_key,),
        ops=("Decrypt",),
        op_weights=(1.0,),
        via=SECRETS_SERVICE,
        contexts=(
            {
                "SecretARN": f"arn:aws:secretsmanager:{ci_key.region}:{shared.account_id}:secret:"
                f"ci/registry-token-{hex_string(rng, 6)}",
                "SecretVersionId": uuid4(rng),
            },
        ),
        schedule="office",
        relative=0.2,
        session_name="GitHubActions",
    )


def _aws_services(draft: _Draft, org: Organisation, trail: str) -> None:
    """Services using keys as themselves: CloudTrail encrypting log files, CloudWatch Logs."""
    trail_key = org.key("shared-services", "alias/cloudtrail-logs")
    owner = trail_key.account_id
    trail_arn = f"arn:aws:cloudtrail:{org.home_region}:{owner}:trail/{trail}"
    draft.add(
        "aws-service",
        family="kms",
        principal=None,
        service="cloudtrail.amazonaws.com",
        account_id=owner,
        keys=(trail_key,),
        ops=("GenerateDataKey",),
        op_weights=(1.0,),
        contexts=({"aws:cloudtrail:arn": trail_arn},),
        object_prefix=f"arn:aws:s3:::{org.trail_bucket}/AWSLogs/",
        relative=0.6,
    )
    logs_keys = [org.key("prod", "alias/cloudwatch-logs")]
    if org.has_account("security"):
        logs_keys.append(org.key("security", "alias/security-findings"))
    for key in logs_keys:
        groups = tuple(
            {"aws:logs:arn": f"arn:aws:logs:{key.region}:{key.account_id}:log-group:{g}"}
            for g in (
                "/ecs/" + org.apps[0].name,
                "/aws/lambda/" + org.apps[1].name,
                "/vpc/flow-logs",
            )
        )
        draft.add(
            "aws-service",
            family="kms",
            principal=None,
            service="logs.amazonaws.com",
            account_id=key.account_id,
            keys=(key,),
            ops=("GenerateDataKey", "Decrypt"),
            op_weights=(0.7, 0.3),
            contexts=groups,
        )


def _cross_account(
    draft: _Draft, org: Organisation, rng: random.Random, shared: Account, staging: Account
) -> None:
    """Roles in prod and staging reading build artifacts sealed with a shared-services key."""
    artifacts = org.key("shared-services", "alias/shared-artifacts")
    context = ({"artifact-bucket": f"{org.company}-artifacts-{shared.account_id[-4:]}"},)
    consumers: list[tuple[Role, tuple[str, ...], str]] = [
        (app.role, app.ips, app.agent) for app in rng.sample(list(org.apps), 2)
    ]
    consumers.append((org.role("staging", "github-actions-deploy"), RUNNER_IPS, CI_AGENT))
    for role, ips, agent in consumers:
        draft.add(
            "cross-account",
            family="kms",
            principal=role,
            service=None,
            account_id=role.account_id,
            keys=(artifacts,),
            ops=("Decrypt", "DescribeKey"),
            op_weights=(0.95, 0.05),
            ips=ips,
            agents=(agent,),
            contexts=context,
            key_ref="arn",  # aliases do not resolve across accounts
            session_name="GitHubActions" if role.kind == "ci" else "",
            schedule="office" if role.kind == "ci" else "continuous",
        )


def _signing_and_batch(draft: _Draft, org: Organisation, rng: random.Random, prod: Account) -> None:
    signer_ips = vpc_ips(prod, 2, rng)
    draft.add(
        "signing",
        family="kms",
        principal=org.role("prod", "release-signer"),
        service=None,
        account_id=prod.account_id,
        keys=(org.key("prod", "alias/release-signing"),),
        ops=("Sign", "Verify", "GetPublicKey"),
        op_weights=(0.55, 0.4, 0.05),
        ips=signer_ips,
        agents=(rng.choice(org.apps).agent,),
        key_ref="alias",
    )
    draft.add(
        "signing",
        family="kms",
        principal=org.role("prod", "token-issuer"),
        service=None,
        account_id=prod.account_id,
        keys=(org.key("prod", "alias/session-tokens"),),
        ops=("GenerateMac", "VerifyMac"),
        op_weights=(0.3, 0.7),
        ips=signer_ips,
        agents=(org.apps[0].agent,),
        key_ref="arn",
    )
    app_keys = tuple(k for k in org.keys if k.purpose == "app" and k.account_id == prod.account_id)
    draft.add(
        "batch",
        family="kms",
        principal=org.role("prod", "key-migration"),
        service=None,
        account_id=prod.account_id,
        keys=app_keys[:4],
        ops=("ReEncrypt", "DescribeKey"),
        op_weights=(0.9, 0.1),
        ips=signer_ips[:1],
        agents=(org.apps[-1].agent,),
        relative=0.3,
    )
    backup_user = next(u for u in org.users if u.name == "legacy-backup")
    backup_keys = tuple(
        k for k in org.keys if k.alias in ("alias/dr-backups", "alias/ledger-archive")
    )
    draft.add(
        "batch",
        family="kms",
        principal=backup_user,
        service=None,
        account_id=prod.account_id,
        keys=backup_keys,
        ops=("GenerateDataKey", "Decrypt"),
        op_weights=(0.8, 0.2),
        ips=("192.0.2.40",),
        agents=(
            "aws-cli/1.32.101 Python/3.9.18 Linux/4.14.336-257.566.amzn2.x86_64 botocore/1.34.101",
        ),
        schedule="nightly",
        session_seconds=86_400,
        relative=0.5,
        contexts=({"backup-set": "nightly"},),
    )
    if org.has_account("data"):
        data = org.account("data")
        draft.add(
            "batch",
            family="kms",
            principal=org.role("data", "nightly-etl"),
            service=None,
            account_id=data.account_id,
            keys=(org.key("data", "alias/etl-staging"), org.key("data", "alias/analytics-lake")),
            ops=("GenerateDataKey", "Decrypt"),
            op_weights=(0.5, 0.5),
            ips=vpc_ips(data, 3, rng),
            agents=(GLUE_AGENT,),
            schedule="nightly",
            contexts=({"job": "nightly-etl", "stage": "curated"},),
        )


def _ci_and_admin(draft: _Draft, org: Organisation, rng: random.Random, home: str) -> None:
    """Terraform reading key metadata, deployments, and RDS creating grants during deploys."""
    for acct in org.accounts:
        keys = tuple(k for k in org.keys if k.account_id == acct.account_id)
        draft.add(
            "ci-admin",
            family="kms",
            principal=org.role(acct.name, "terraform-apply"),
            service=None,
            account_id=acct.account_id,
            keys=keys,
            ops=(
                "DescribeKey",
                "GetKeyPolicy",
                "GetKeyRotationStatus",
                "ListResourceTags",
                "ListAliases",
                "ListGrants",
                "TagResource",
                "EnableKeyRotation",
            ),
            op_weights=(0.34, 0.16, 0.16, 0.16, 0.08, 0.06, 0.03, 0.01),
            ips=RUNNER_IPS,
            agents=(CI_AGENT,),
            schedule="office",
            key_ref="arn",
            session_name="terraform",
            relative=2.0 if acct.name == "prod" else 1.0,
        )
    prod = org.account("prod")
    prod_app_keys = tuple(
        k for k in org.keys if k.purpose == "app" and k.account_id == prod.account_id
    )
    draft.add(
        "ci-admin",
        family="kms",
        principal=org.role("prod", "github-actions-deploy"),
        service=None,
        account_id=prod.account_id,
        keys=prod_app_keys,
        ops=("Encrypt", "GenerateDataKey", "DescribeKey"),
        op_weights=(0.5, 0.3, 0.2),
        ips=RUNNER_IPS,
        agents=(GITHUB_OIDC_AGENT.replace("api/sts#3.600.0", "api/kms#3.600.0"),),
        schedule="office",
        session_name="GitHubActions",
        contexts=({"pipeline": "deploy"},),
    )
    rds_key = org.key("prod", f"alias/{org.apps[0].name}-data")
    draft.add(
        "ci-admin",
        family="kms",
        principal=org.role("prod", "terraform-apply"),
        service=None,
        account_id=prod.account_id,
        keys=(rds_key,),
        ops=("CreateGrant",),
        op_weights=(1.0,),
        via="rds.amazonaws.com",
        schedule="office",
        session_name="terraform",
        relative=0.1,
    )
    if org.has_account("security"):
        sec = org.account("security")
        draft.add(
            "ci-admin",
            family="kms",
            principal=org.role("security", "security-audit"),
            service=None,
            account_id=sec.account_id,
            keys=tuple(k for k in org.keys if k.account_id == sec.account_id),
            ops=("ListKeys", "ListAliases", "DescribeKey", "GetKeyRotationStatus", "GetKeyPolicy"),
            op_weights=(0.1, 0.1, 0.4, 0.2, 0.2),
            ips=("10.60.0.15",),
            agents=(SCANNER_AGENT,),
            session_name="prowler-scan",
        )


def _humans(draft: _Draft, org: Organisation, rng: random.Random, prod: Account) -> None:
    home_keys = tuple(
        k for k in org.keys if k.account_id == prod.account_id and k.region == org.home_region
    )
    for human in org.humans:
        keys = tuple(rng.sample(home_keys, rng.randint(3, 6)))
        common: dict[str, Any] = {
            "principal": human.principal,
            "service": None,
            "account_id": prod.account_id,
            "ips": human.ips,
            "agents": human.agents,
            "schedule": "office",
            "session_seconds": 8 * 3600,
            "session_name": human.login,
            "key_ref": "alias",
            "console": "console" in human.agents,
        }
        draft.add(
            "humans-kms",
            family="kms",
            keys=keys,
            ops=(
                "DescribeKey",
                "ListAliases",
                "Decrypt",
                "ListKeys",
                "GetKeyPolicy",
                "GenerateDataKey",
                "Encrypt",
                "GetKeyRotationStatus",
            ),
            op_weights=(0.25, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05),
            contexts=({"Department": "ops"}, {"purpose": "manual-check"}),
            relative=2.0 if human.admin else 1.0,
            **common,
        )
        draft.add(
            "ec2",
            family="ec2",
            ops=(
                "DescribeInstances",
                "DescribeVolumes",
                "DescribeSecurityGroups",
                "DescribeSubnets",
            ),
            op_weights=(0.4, 0.2, 0.3, 0.1),
            region=org.home_region,
            **common,
        )
        draft.add(
            "iam",
            family="iam",
            ops=("ListRoles", "GetRole", "ListAttachedRolePolicies", "ListPolicies"),
            op_weights=(0.4, 0.3, 0.2, 0.1),
            targets=tuple(a.role for a in org.apps[:4]),
            **common,
        )
        draft.add(
            "signin",
            family="signin",
            ops=("ConsoleLogin",),
            op_weights=(1.0,),
            version="1.09",
            **common,
        )


def _non_kms(draft: _Draft, org: Organisation, rng: random.Random, prod: Account) -> None:
    """STS, S3 data events, EC2/IAM reads, GitHub OIDC, the access portal."""
    for runtime, service in (
        ("ecs", "ecs-tasks.amazonaws.com"),
        ("lambda", "lambda.amazonaws.com"),
        ("ec2", "ec2.amazonaws.com"),
    ):
        roles = tuple(a.role for a in org.apps if a.runtime == runtime)
        if roles:
            draft.add(
                "sts",
                family="sts",
                principal=None,
                service=service,
                account_id=prod.account_id,
                targets=roles,
                region=org.home_region,
                relative=float(len(roles)),
            )
    bucket = f"{org.company}-datalake-{prod.account_id[-4:]}"
    for app in org.apps:
        draft.add(
            "s3-data",
            family="s3",
            principal=app.role,
            service=None,
            account_id=prod.account_id,
            ops=("GetObject", "PutObject"),
            op_weights=(0.7, 0.3),
            ips=app.ips,
            agents=(app.agent,),
            object_prefix=f"{bucket}/{app.name}/",
            region=org.home_region,
            keys=(org.key("prod", "alias/s3-datalake"),),
            version="1.10",
        )
    for acct in org.accounts:
        draft.add(
            "webid",
            family="webid",
            principal=None,
            service="token.actions.githubusercontent.com",
            account_id=acct.account_id,
            targets=(
                org.role(acct.name, "github-actions-deploy"),
                org.role(acct.name, "terraform-apply"),
            ),
            ips=RUNNER_IPS,
            agents=(GITHUB_OIDC_AGENT,),
            schedule="office",
            region=org.home_region,
            subject=f"repo:{org.company}/platform:ref:refs/heads/main",
        )
    if org.has_account("security"):
        audit = org.role("security", "security-audit")
        for family, ops in (
            ("ec2", ("DescribeInstances", "DescribeSecurityGroups", "DescribeVolumes")),
            ("iam", ("ListRoles", "ListPolicies", "ListUsers")),
        ):
            draft.add(
                family,
                family=family,
                principal=audit,
                service=None,
                account_id=audit.account_id,
                ops=ops,
                op_weights=(0.4, 0.3, 0.3),
                ips=("10.60.0.15",),
                agents=(SCANNER_AGENT,),
                region=org.home_region if family == "ec2" else GLOBAL_REGION,
                session_name="prowler-scan",
                relative=3.0,
            )
    broker = next(u for u in org.users if u.name == "federation-broker")
    draft.add(
        "ec2",
        family="ec2",
        principal=broker,
        service=None,
        identity_kind="federated",
        account_id=prod.account_id,
        ops=("DescribeInstances", "DescribeVolumes"),
        op_weights=(0.7, 0.3),
        ips=("192.0.2.45",),
        agents=(REPORTING_AGENT,),
        region=org.home_region,
        session_seconds=12 * 3600,
        session_name="capacity-report",
        relative=0.5,
    )
    management = org.management_account
    store = "d-" + hex_string(rng, 10)
    draft.add(
        "sso",
        family="sso",
        principal=None,
        service="sso.amazonaws.com",
        account_id=management.account_id,
        ops=("ListAccounts", "ListAccountRoles", "Federate"),
        op_weights=(0.3, 0.3, 0.4),
        ips=tuple(sorted({ip for h in org.humans for ip in h.ips})),
        agents=(BROWSER_AGENT,),
        schedule="office",
        region=org.home_region,
        identity_store=store,
        version="1.09",
    )


def rampup_workload(org: Organisation, wid: int, first_day: int, ramp_days: int) -> Workload:
    """A new service that starts using the data-lake key inside the window and grows daily."""
    rng = rng_for(org.seed, "rampup")
    prod = org.account("prod")
    app = org.apps[0]
    name = org.rampup_role.name.removesuffix("-service")
    return Workload(
        wid=wid,
        category="rampup",
        family="kms",
        principal=org.rampup_role,
        service=None,
        account_id=prod.account_id,
        keys=(org.key("prod", "alias/s3-datalake"),),
        ops=("GenerateDataKey", "Decrypt"),
        op_weights=(0.4, 0.6),
        ips=vpc_ips(prod, 2, rng),
        agents=(app.agent,),
        weight=0.008,  # its share once fully ramped up
        contexts=tuple({"app": name, "dataset": d} for d in ("events", "profiles")),
        key_ref="alias",
        version="1.11",
        active_from_day=first_day,
        ramp_days=ramp_days,
    )


def monthly_batch_workload(org: Organisation, wid: int, run_records: int) -> Workload:
    """The month-end ledger close: one heavy night a month decrypting the ledger archive."""
    rng = rng_for(org.seed, "monthly-batch")
    prod = org.account("prod")
    return Workload(
        wid=wid,
        category="monthly-batch",
        family="kms",
        principal=org.role("prod", "month-end-ledger-close"),
        service=None,
        account_id=prod.account_id,
        keys=(org.key("prod", "alias/ledger-archive"),),
        ops=("Decrypt", "GenerateDataKey"),
        op_weights=(0.85, 0.15),
        ips=vpc_ips(prod, 1, rng),
        agents=(BATCH_AGENT,),
        schedule="monthly",
        contexts=tuple({"ledger": "general", "period": p} for p in ("current", "previous")),
        key_ref="arn",
        version="1.10",
        session_seconds=4 * 3600,
        session_name="ledger-close",
        run_records=run_records,
    )
