"""The fictional organisation whose trail is generated: accounts, regions, keys, roles, people.

Everything is derived from the seed alone, so the same seed always describes the same company
whatever window or volume is asked for. The shapes follow what a mid-size AWS estate looks like:
one production account carrying most of the load, a shared-services account that owns keys used
across accounts, applications that each own a data key, infrastructure keys used through AWS
services, a handful of people working through IAM Identity Center permission sets (plus a couple
of legacy IAM users), and CI and admin roles that exist whether or not they call KMS.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property

from analytics.generator.randomness import (
    access_key_id,
    account_id,
    hex_string,
    iam_unique_id,
    rng_for,
    uuid4,
)

ACCOUNT_NAMES = ("prod", "shared-services", "staging", "data", "security")
GLOBAL_REGION = "us-east-1"  # IAM, STS-global and sign-in events are logged here
_HOME_REGIONS = ("us-east-1", "eu-west-1")
_OTHER_REGIONS = ("us-west-2", "eu-central-1", "ap-southeast-2", "eu-west-2")
_APP_NAMES = (
    "orders",
    "payments",
    "customers",
    "billing",
    "inventory",
    "search",
    "notifications",
    "ledger",
    "identity",
    "reporting",
    "shipping",
    "pricing",
    "catalog",
    "checkout",
    "loyalty",
    "fraud-scoring",
    "recommendations",
    "media",
)
_COMPANIES = ("acme", "globex", "initech", "hooli", "vandelay", "umbrella", "wayne", "stark")
_FIRST_NAMES = (
    "alice",
    "bruno",
    "chloe",
    "dmitri",
    "emma",
    "farid",
    "grace",
    "hiro",
    "ines",
    "jon",
)
_LAST_NAMES = (
    "martin",
    "okafor",
    "schmidt",
    "nakamura",
    "silva",
    "kowalski",
    "dubois",
    "patel",
    "lee",
    "novak",
)
_OFFICE_NET = "192.0.2"  # RFC 5737 documentation range: the company's office and NAT egress

# User agents are kept as families with a few versions so each principal gets a stable one.
SDK_AGENTS = (
    "aws-sdk-java/2.25.60 Linux/5.10.220-209.869.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9"
    " Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard",
    "aws-sdk-java/2.26.12 Linux/6.1.94-99.176.amzn2023.x86_64 OpenJDK_64-Bit_Server_VM/21.0.3+9"
    " Java/21.0.3 vendor/Amazon.com_Inc. exec-env/AWS_ECS_FARGATE io/async http/NettyNio",
    "Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.12.4"
    " md/pyimpl#CPython exec-env/AWS_ECS_FARGATE cfg/retry-mode#legacy Botocore/1.34.144",
    "Boto3/1.35.10 md/Botocore#1.35.10 ua/2.0 os/linux#6.1.102 md/arch#x86_64 lang/python#3.11.9"
    " md/pyimpl#CPython exec-env/AWS_Lambda_python3.11 cfg/retry-mode#legacy Botocore/1.35.10",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/kms#1.35.3",
    "aws-sdk-js/3.614.0 ua/2.1 os/linux#5.10.219 lang/js md/nodejs#20.15.1 api/kms#3.614.0",
)
GLUE_AGENT = (
    "Boto3/1.35.10 md/Botocore#1.35.10 ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.11.9"
    " md/pyimpl#CPython exec-env/AWS_Glue Botocore/1.35.10"
)
SCANNER_AGENT = (
    "Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux#5.10.219 md/arch#x86_64 lang/python#3.12.4"
    " md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 Botocore/1.34.144"
)
REPORTING_AGENT = (
    "aws-sdk-java/1.12.700 Linux/5.10.219 OpenJDK_64-Bit_Server_VM/11.0.23+9 java/11.0.23"
    " vendor/Amazon.com_Inc."
)
BROWSER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.5 Safari/605.1.15"
)
BATCH_AGENT = (
    "aws-sdk-java/2.25.60 Linux/5.10.220-209.869.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9"
    " Java/17.0.11 vendor/Amazon.com_Inc. exec-env/AWS_BATCH io/sync http/Apache"
)
HUMAN_AGENTS = (
    "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9"
    " md/pyimpl#CPython cfg/retry-mode#standard md/installer#source md/prompt#off",
    "aws-cli/2.15.58 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0-41-generic md/arch#x86_64"
    " lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe",
    "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.12.3"
    " md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.131",
    "console",  # marks console use: logged as "AWS Internal" with sessionCredentialFromConsole
)
CI_AGENT = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.9.3 (+https://www.terraform.io)"
    " terraform-provider-aws/5.61.0"
    " (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.30.3 os/linux"
    " lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/kms#1.35.3"
)


def trail_name(org_id: str | None) -> str:
    """The organisation trail, or the per-account trail of a single-account setup."""
    return "org-trail" if org_id else "management-events"


@dataclass(frozen=True)
class Account:
    """One AWS account of the organisation; ``name`` is its role in the estate."""

    account_id: str
    name: str
    vpc_octet: int  # second octet of the account's VPC CIDR, 10.<octet>.0.0/16


@dataclass(frozen=True)
class Key:
    """A customer managed KMS key. ``purpose`` says who uses it and how."""

    key_id: str
    account_id: str
    region: str
    alias: str
    spec: str
    purpose: str
    production: bool
    rotation_enabled: bool
    rotation_details_2025: bool  # RotateKey events use the 2025 serviceEventDetails form
    material_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.key_id}"

    @property
    def usage(self) -> str:
        return {"RSA_2048": "SIGN_VERIFY", "HMAC_256": "GENERATE_VERIFY_MAC"}.get(
            self.spec, "ENCRYPT_DECRYPT"
        )

    @cached_property
    def resources(self) -> list[dict[str, str]]:
        """The ``resources`` array CloudTrail logs for an operation on this key (shared)."""
        return [{"accountId": self.account_id, "type": "AWS::KMS::Key", "ARN": self.arn}]


@dataclass(frozen=True)
class Role:
    """An IAM role. ``kind`` is app, ci, admin, sso, batch, service or outside."""

    account_id: str
    name: str
    path: str
    role_id: str
    kind: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role{self.path}{self.name}"


@dataclass(frozen=True)
class User:
    """A long-lived IAM user with an access key (legacy people and scripts)."""

    account_id: str
    name: str
    user_id: str
    access_key_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"


@dataclass(frozen=True)
class Human:
    """A person: works office hours through one principal, from few IPs and tools."""

    login: str  # SSO session name (an e-mail) or the IAM user name
    principal: Role | User
    ips: tuple[str, ...]
    agents: tuple[str, ...]
    admin: bool


@dataclass(frozen=True)
class App:
    """An application: a role per environment, its data keys, its hosts and its SDK."""

    name: str
    role: Role
    keys: tuple[Key, ...]
    runtime: str  # ecs, lambda or ec2: decides session names
    ips: tuple[str, ...]
    agent: str
    context_style: str  # shape of the encryption context the app sends
    staging_role: Role | None
    staging_key: Key | None


@dataclass(frozen=True)
class Organisation:
    """The whole fictional estate, derived from the seed."""

    seed: int
    company: str
    accounts: tuple[Account, ...]
    regions: tuple[str, ...]  # home region first; us-east-1 always present
    outside_accounts: tuple[str, ...]
    keys: tuple[Key, ...]
    roles: tuple[Role, ...]
    users: tuple[User, ...]
    humans: tuple[Human, ...]
    apps: tuple[App, ...]
    rampup_role: Role  # exists but starts calling KMS only inside the window
    vpc_endpoints: dict[str, str] = field(default_factory=dict)  # "<account>:<region>" -> vpce

    @property
    def home_region(self) -> str:
        return self.regions[0]

    @property
    def trail_bucket(self) -> str:
        return f"{self.company}-cloudtrail-{self.accounts[0].account_id[-6:]}"

    @property
    def management_account(self) -> Account:
        """Owner of the organisation trail (shared-services in this estate)."""
        return self.account("shared-services")

    def account(self, name: str) -> Account:
        return next(a for a in self.accounts if a.name == name)

    def has_account(self, name: str) -> bool:
        return any(a.name == name for a in self.accounts)

    def key(self, account_name: str, alias: str, region: str | None = None) -> Key:
        acct = self.account(account_name).account_id
        wanted = region or self.home_region
        return next(
            k for k in self.keys if k.account_id == acct and k.alias == alias and k.region == wanted
        )

    def role(self, account_name: str, name_prefix: str) -> Role:
        acct = self.account(account_name).account_id
        return next(
            r for r in self.roles if r.account_id == acct and r.name.startswith(name_prefix)
        )


class _Builder:
    """Accumulates entities while drawing from one seeded stream."""

    def __init__(self, seed: int) -> None:
        self.rng = rng_for(seed, "organisation")
        self.keys: list[Key] = []
        self.roles: list[Role] = []
        self.users: list[User] = []

    def key(
        self,
        account: Account,
        region: str,
        alias: str,
        purpose: str,
        *,
        spec: str = "SYMMETRIC_DEFAULT",
        production: bool = True,
    ) -> Key:
        symmetric = spec == "SYMMETRIC_DEFAULT"
        key = Key(
            key_id=uuid4(self.rng),
            account_id=account.account_id,
            region=region,
            alias=alias,
            spec=spec,
            purpose=purpose,
            production=production,
            # only symmetric AWS_KMS keys can rotate automatically; most teams turn it on
            rotation_enabled=symmetric and self.rng.random() < 0.85,
            rotation_details_2025=self.rng.random() < 0.5,
            material_id=hex_string(self.rng, 64),
        )
        self.keys.append(key)
        return key

    def role(self, account: Account, name: str, path: str, kind: str) -> Role:
        role = Role(account.account_id, name, path, iam_unique_id(self.rng, "AROA"), kind)
        self.roles.append(role)
        return role

    def user(self, account: Account, name: str) -> User:
        user = User(
            account.account_id,
            name,
            iam_unique_id(self.rng, "AIDA"),
            access_key_id(self.rng, temporary=False),
        )
        self.users.append(user)
        return user

    def vpc_ips(self, account: Account, count: int) -> tuple[str, ...]:
        return vpc_ips(account, count, self.rng)


def vpc_ips(account: Account, count: int, rng: random.Random) -> tuple[str, ...]:
    """Private addresses of hosts in the account's VPC (calls through a VPC endpoint)."""
    return tuple(
        f"10.{account.vpc_octet}.{rng.randrange(64)}.{rng.randrange(4, 251)}" for _ in range(count)
    )


def _regions(rng: random.Random) -> tuple[str, ...]:
    home = rng.choice(_HOME_REGIONS)
    regions = [home] if home == "us-east-1" else [home, "us-east-1"]
    wanted = rng.randint(2, 3)
    while len(regions) < wanted:
        regions.append(rng.choice([r for r in (*_OTHER_REGIONS, "eu-west-1") if r not in regions]))
    return tuple(regions)


def build_organisation(seed: int) -> Organisation:
    """Derive the organisation for ``seed`` (same seed, same company)."""
    b = _Builder(seed)
    rng = b.rng
    company = rng.choice(_COMPANIES)
    ids: set[str] = set()
    accounts: list[Account] = []
    for index, name in enumerate(ACCOUNT_NAMES[: rng.randint(3, 5)]):
        acct = account_id(rng)
        ids.add(acct)
        accounts.append(Account(acct, name, 20 + 10 * index))
    outside: list[str] = []
    outside_count = rng.randint(2, 3)
    while len(outside) < outside_count:
        candidate = account_id(rng)
        if candidate not in ids:
            ids.add(candidate)
            outside.append(candidate)
    regions = _regions(rng)
    home, second = regions[0], regions[1]
    by_name = {a.name: a for a in accounts}
    prod, shared, staging = by_name["prod"], by_name["shared-services"], by_name["staging"]

    app_names = rng.sample(_APP_NAMES, rng.randint(8, 12) + 1)
    rampup_name = app_names.pop()
    apps: list[App] = []
    for index, name in enumerate(app_names):
        role = b.role(prod, f"{name}-service", "/app/", "app")
        keys = [b.key(prod, home, f"alias/{name}-data", "app")]
        if index < 3:  # the busiest apps run active-active in a second region
            keys.append(b.key(prod, second, f"alias/{name}-data", "app"))
        staging_role = staging_key = None
        if index % 2 == 0:
            staging_role = b.role(staging, f"{name}-service", "/app/", "app")
            staging_key = b.key(staging, home, f"alias/{name}-data", "app", production=False)
        apps.append(
            App(
                name=name,
                role=role,
                keys=tuple(keys),
                runtime=rng.choice(("ecs", "ecs", "lambda", "ec2")),
                ips=b.vpc_ips(prod, rng.randint(2, 4)),
                agent=rng.choice(SDK_AGENTS),
                context_style=rng.choice(("esdk", "department", "tenant", "resource")),
                staging_role=staging_role,
                staging_key=staging_key,
            )
        )

    # infrastructure keys, used through AWS services or by dedicated service roles
    b.key(prod, home, "alias/s3-datalake", "s3")
    b.key(prod, home, "alias/secrets-manager", "secrets")
    b.key(prod, home, "alias/ssm-parameters", "ssm")
    b.key(prod, home, "alias/cloudwatch-logs", "logs")
    b.key(prod, home, "alias/release-signing", "signing", spec="RSA_2048")
    b.key(prod, home, "alias/session-tokens", "mac", spec="HMAC_256")
    b.key(prod, home, "alias/ledger-archive", "batch")
    b.key(shared, home, "alias/shared-artifacts", "shared")
    b.key(shared, home, "alias/cloudtrail-logs", "cloudtrail")
    b.key(shared, home, "alias/ci-secrets", "secrets")
    b.key(staging, home, "alias/s3-staging", "s3", production=False)
    if "data" in by_name:
        b.key(by_name["data"], home, "alias/analytics-lake", "s3")
        b.key(by_name["data"], home, "alias/etl-staging", "batch")
    if "security" in by_name:
        b.key(by_name["security"], home, "alias/security-findings", "logs")
        b.key(by_name["security"], home, "alias/incident-forensics", "forensics")
    if len(regions) > 2:
        b.key(prod, regions[2], "alias/dr-backups", "s3")

    # roles that exist in every account, whether or not they call KMS
    sso_path = "/aws-reserved/sso.amazonaws.com/"
    for account in accounts:
        b.role(account, "github-actions-deploy", "/ci/", "ci")
        b.role(account, "terraform-apply", "/ci/", "ci")
        b.role(account, "platform-admin", "/admin/", "admin")
        for permission_set in ("AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess"):
            if permission_set == "PowerUserAccess" and account.name not in ("prod", "staging"):
                continue
            name = f"AWSReservedSSO_{permission_set}_{hex_string(rng, 16)}"
            b.role(account, name, sso_path, "sso")
    b.role(prod, "break-glass", "/admin/", "admin")
    b.role(prod, "month-end-ledger-close", "/batch/", "batch")
    b.role(prod, "release-signer", "/service/", "service")
    b.role(prod, "token-issuer", "/service/", "service")
    b.role(prod, "key-migration", "/service/", "service")
    b.role(prod, "secrets-rotation-lambda", "/service/", "service")
    b.role(prod, "datalake-reader", "/analytics/", "app")
    b.role(prod, "legacy-automation", "/ops/", "service")
    b.role(shared, "artifact-publisher", "/ci/", "ci")
    if "data" in by_name:
        b.role(by_name["data"], "nightly-etl", "/etl/", "batch")
        b.role(by_name["data"], "athena-query", "/analytics/", "app")
    if "security" in by_name:
        b.role(by_name["security"], "security-audit", "/security/", "service")
    rampup_role = b.role(prod, f"{rampup_name}-service", "/app/", "app")

    b.user(prod, "legacy-backup")
    b.user(prod, "federation-broker")
    humans = _humans(b, accounts)
    vpc_endpoints = {
        f"{a.account_id}:{r}": f"vpce-{hex_string(rng, 17)}" for a in accounts for r in regions
    }
    return Organisation(
        seed=seed,
        company=company,
        accounts=tuple(accounts),
        regions=regions,
        outside_accounts=tuple(outside),
        keys=tuple(b.keys),
        roles=tuple(b.roles),
        users=tuple(b.users),
        humans=humans,
        apps=tuple(apps),
        rampup_role=rampup_role,
        vpc_endpoints=vpc_endpoints,
    )


def _humans(b: _Builder, accounts: list[Account]) -> tuple[Human, ...]:
    """People: two admins, developers on PowerUser/ReadOnly, one or two legacy IAM users."""
    rng = b.rng
    prod = accounts[0]
    count = rng.randint(5, 10)
    firsts, lasts = rng.sample(_FIRST_NAMES, count), rng.sample(_LAST_NAMES, count)
    office = (f"{_OFFICE_NET}.10", f"{_OFFICE_NET}.11")
    sso = [r for r in b.roles if r.kind == "sso"]

    def sso_role(acct: Account, permission_set: str) -> Role:
        return next(r for r in sso if r.account_id == acct.account_id and permission_set in r.name)

    humans: list[Human] = []
    legacy_users = rng.randint(1, 2)
    for index in range(count):
        login = f"{firsts[index]}.{lasts[index]}"
        ips = (rng.choice(office), f"{_OFFICE_NET}.{100 + index}")[: rng.randint(1, 2)]
        agents = tuple(rng.sample(HUMAN_AGENTS, rng.randint(1, 2)))
        admin = index < 2
        principal: Role | User
        if index >= count - legacy_users:
            principal = b.user(prod, login)
            agents = tuple(a for a in agents if a != "console") or (HUMAN_AGENTS[1],)
        elif admin:
            principal = sso_role(prod, "AdministratorAccess")
        else:
            principal = sso_role(prod, "PowerUserAccess" if index % 2 else "ReadOnlyAccess")
        if isinstance(principal, Role):
            login = f"{login}@example.com"
        humans.append(Human(login, principal, ips, agents, admin))
    return tuple(humans)
