"""Labelled scenarios: the attacks a detector must find and the oddities it must let pass.

Scenarios are planned here, once, in the parent process: who, which key, which day and hour,
how many calls. ``scenario_records`` emits them in the worker of their day. They sit in the
last days of the window (day index 10 or later) so that every actor and key has a baseline
before them, and they are small in absolute terms: a handful of control-plane calls, or a burst
of a few hundred data-plane calls, as real incidents are. Volumes that must stand out against a
baseline (the exfiltration burst) are sized from the baseline the plan implies.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import date, timedelta

from analytics.generator.events import JsonObject
from analytics.generator.organisation import (
    Key,
    Organisation,
    Role,
    User,
)
from analytics.generator.plan import (
    Blackout,
    Boost,
    KeyOutage,
    Plan,
    Rotation,
    ScenarioSpec,
    WorkloadTag,
    expected_hourly,
)
from analytics.generator.randomness import hex_string, iam_unique_id, rng_for, uuid4
from analytics.generator.rhythm import day_epoch
from analytics.generator.workloads import SECRETS_SERVICE, SSM_VIA, Workload

MIN_DAYS_FOR_SCENARIOS = 14
FIRST_SCENARIO_DAY = 10
_SCENARIO_SPAN = 7  # scenarios spread over (at most) the last seven days


def scenario_days(days: int) -> list[int]:
    """Days that may carry scenarios: the last week, never before day index 10."""
    if days < MIN_DAYS_FOR_SCENARIOS:
        return []
    return list(range(max(FIRST_SCENARIO_DAY, days - _SCENARIO_SPAN), days))


def slot_day(days: int, slot: int) -> int:
    """Day for slot 0..6, spread evenly over the scenario days."""
    avail = scenario_days(days)
    return avail[round(slot * (len(avail) - 1) / (_SCENARIO_SPAN - 1))]


def monthly_batch_days(plan_start: date, days: int, seed: int) -> tuple[int, ...]:
    """Days the month-end batch runs: one day-of-month, every month in the window.

    With scenarios, the day-of-month is chosen so that one run falls among the scenario days
    (the decoy); otherwise it is derived from the seed.
    """
    rng = rng_for(seed, "monthly-batch-day")
    dom = 1 + rng.randrange(28)
    avail = scenario_days(days)
    if avail:
        usable = [d for d in avail if (plan_start + timedelta(days=d)).day <= 28]
        # a run whose previous month's run is in the window too, so a baseline can learn it
        learnable = [d for d in usable if _month_earlier(plan_start, d) >= 0]
        chosen = learnable or usable
        if chosen:
            dom = (plan_start + timedelta(days=chosen[len(chosen) // 2])).day
    return tuple(d for d in range(days) if (plan_start + timedelta(days=d)).day == dom)


def _month_earlier(plan_start: date, day: int) -> int:
    """Day index of the same day-of-month one month before ``day`` (negative: before start)."""
    when = plan_start + timedelta(days=day)
    year, month = (when.year, when.month - 1) if when.month > 1 else (when.year - 1, 12)
    return (date(year, month, when.day) - plan_start).days


class _Planner:
    """Builds the scenario specs and the plan changes they imply."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.org: Organisation = plan.org
        self.rng = rng_for(plan.seed, "scenarios")
        self.specs: list[ScenarioSpec] = []
        self.outages: list[KeyOutage] = []
        self.boosts: list[Boost] = []
        self.tags: list[WorkloadTag] = []
        self.blackouts: list[Blackout] = []
        self.used_keys: set[str] = set()
        self.used_workloads: set[int] = set()

    def at(self, hour: int, minute_span: int = 10) -> int:
        return hour * 3600 + self.rng.randrange(minute_span * 60)

    def add(self, spec: ScenarioSpec, *, reserve_keys: bool = True) -> None:
        self.specs.append(spec)
        if reserve_keys:
            self.used_keys.update(k.arn for k in spec.keys)
        if spec.workload is not None:
            self.used_workloads.add(spec.workload)

    def app_workloads(self) -> list[Workload]:
        """Direct, continuous, production app workloads not already used by a scenario."""
        prod = self.org.account("prod").account_id
        return [
            wl
            for wl in self.plan.workloads
            if wl.category == "app-direct"
            and wl.account_id == prod
            and wl.wid not in self.used_workloads
            and not any(k.arn in self.used_keys for k in wl.keys)
        ]

    def admin_human(self, index: int) -> tuple[Role, str, str]:
        admins = [h for h in self.org.humans if h.admin and isinstance(h.principal, Role)]
        human = admins[index % len(admins)]
        assert isinstance(human.principal, Role)
        return human.principal, human.login, human.ips[0]

    def outside_role(self, account: str, name: str) -> Role:
        return Role(account, name, "/", iam_unique_id(self.rng, "AROA"), "outside")


def add_scenarios(plan: Plan) -> Plan:
    """The plan with scenarios, decoys and key rotations decided (labels only if days >= 14)."""
    planner = _Planner(plan)
    rotations = _rotations(plan, planner.rng)
    if not scenario_days(plan.days):
        return dataclasses.replace(plan, rotations=rotations)
    for plan_one in _PLANNERS:
        plan_one(planner)
    return dataclasses.replace(
        plan,
        scenarios=tuple(sorted(planner.specs, key=lambda s: s.sid)),
        outages=tuple(planner.outages),
        boosts=tuple(planner.boosts),
        tags=tuple(planner.tags),
        blackouts=tuple(planner.blackouts),
        rotations=rotations,
    )


def _rotations(plan: Plan, rng: random.Random) -> tuple[Rotation, ...]:
    """A few yearly automatic rotations fall inside any window; one among the scenario days."""
    eligible = [k for k in plan.org.keys if k.rotation_enabled]
    chosen = rng.sample(eligible, min(3, len(eligible)))
    labelled = bool(scenario_days(plan.days))
    out = []
    for index, key in enumerate(chosen):
        day = slot_day(plan.days, 2) if labelled and index == 0 else rng.randrange(plan.days)
        out.append(
            Rotation(
                key, day, rng.randrange(86_400), "D04-decoy_auto_rotation" if labelled else None
            )
        )
    return tuple(out)


# --- planning, one function per scenario ----------------------------------------------------


def _plan_exfiltration(p: _Planner) -> None:
    day, hour = slot_day(p.plan.days, 1), 13
    candidates = p.app_workloads()
    # a mid-volume app: its burst must dwarf its baseline yet stay a few hundred calls
    expected = {wl.wid: expected_hourly(p.plan, wl.wid, day - 7, hour) for wl in candidates}
    target = min(candidates, key=lambda wl: abs(expected[wl.wid] - 25.0))
    count = min(5000, max(300, round(20 * expected[target.wid])))
    ip = f"203.0.113.{p.rng.randrange(10, 250)}"
    key = target.keys[0]
    p.add(
        ScenarioSpec(
            sid="S01-decrypt_exfiltration",
            kind="decrypt_exfiltration",
            malicious=True,
            day=day,
            second=p.at(hour),
            description=(
                f"Role {target.actor.rsplit('/', 1)[-1]} made {count} Decrypt calls on "
                f"{key.alias} within one hour from {ip}, an address it never used, with its usual "
                f"user agent; about 20 times its usual hourly volume "
                f"(~{expected[target.wid]:.0f} calls)."
            ),
            actor=target.principal,
            keys=(key,),
            count=count,
            workload=target.wid,
            details={"ip": ip},
        )
    )


def _plan_failed_enumeration(p: _Planner) -> None:
    target = p.app_workloads()[-1]
    role = target.principal
    assert isinstance(role, Role)
    pool = [k for k in p.org.keys if k.spec == "SYMMETRIC_DEFAULT" and k not in target.keys]
    keys = tuple(p.rng.sample(pool, min(len(pool), 10)))
    count = sum(p.rng.randint(3, 7) for _ in keys)
    p.add(
        ScenarioSpec(
            sid="S02-failed_decrypt_enumeration",
            kind="failed_decrypt_enumeration",
            malicious=True,
            day=slot_day(p.plan.days, 2),
            second=p.at(10),
            description=(
                f"Role {role.name} tried Decrypt against {len(keys)} keys it never uses, across "
                "accounts, within one hour; most calls failed with AccessDenied, "
                "IncorrectKeyException or InvalidCiphertextException."
            ),
            actor=role,
            keys=keys,
            count=count,
            workload=target.wid,
        ),
        reserve_keys=False,
    )


def _plan_outside_caller(p: _Planner) -> None:
    outside = p.org.outside_accounts[0]
    role = p.outside_role(outside, "partner-data-sync")
    app = p.app_workloads()[0]
    key = app.keys[0]
    count = p.rng.randint(25, 60)
    p.add(
        ScenarioSpec(
            sid="S03-new_outside_account_caller",
            kind="new_outside_account_caller",
            malicious=True,
            day=slot_day(p.plan.days, 3),
            second=p.at(16),
            description=(
                f"A role in account {outside}, which is not part of the organisation and never "
                f"called before, made {count} Decrypt/GenerateDataKey calls on {key.alias}."
            ),
            actor=role,
            keys=(key,),
            count=count,
            details={"ip": f"198.51.100.{p.rng.randrange(10, 250)}", "contexts": app.contexts},
        )
    )


def _plan_disable_then_delete(p: _Planner) -> None:
    candidates = p.app_workloads()
    app = candidates[len(candidates) // 2]
    key = app.keys[0]
    day = slot_day(p.plan.days, 6)
    second = p.at(13)
    admin = p.org.role("prod", "platform-admin")
    admin_login = p.admin_human(0)[1]
    epoch = day_epoch(p.plan.start, day) + second
    scheduled = epoch + 120 + p.rng.randrange(300)
    p.outages.append(
        KeyOutage(
            key.arn,
            epoch,
            "DisabledException",
            f"{key.arn} is disabled.",
            "S04-key_disabled_then_deletion",
        )
    )
    p.outages.append(
        KeyOutage(
            key.arn,
            scheduled,
            "KMSInvalidStateException",
            f"{key.arn} is pending deletion.",
            "S04-key_disabled_then_deletion",
        )
    )
    p.add(
        ScenarioSpec(
            sid="S04-key_disabled_then_deletion",
            kind="key_disabled_then_deletion",
            malicious=True,
            day=day,
            second=second,
            description=(
                f"Role platform-admin disabled {key.alias}, a key in daily use by "
                f"{app.actor.rsplit('/', 1)[-1]}, then scheduled it for deletion in 7 days; the "
                "application's calls on the key failed from then on (KMSInvalidStateException: "
                "pending deletion)."
            ),
            actor=admin,
            keys=(key,),
            workload=app.wid,
            details={"session": admin_login, "scheduled_second": scheduled - epoch + second},
        )
    )


def _plan_policy_opened(p: _Planner) -> None:
    app = p.app_workloads()[0]
    key = app.keys[0]
    role, login, ip = p.admin_human(1)
    outside = p.org.outside_accounts[-1]
    p.add(
        ScenarioSpec(
            sid="S05-key_policy_opened",
            kind="key_policy_opened",
            malicious=True,
            day=slot_day(p.plan.days, 4),
            second=p.at(14),
            description=(
                f"The key policy of {key.alias} was replaced: a new statement allows any AWS "
                f'principal ("AWS": "*") and account {outside} to use the key. The policy '
                "set by Terraform earlier in the window is the baseline to diff against."
            ),
            actor=role,
            keys=(key,),
            workload=app.wid,
            details={
                "session": login,
                "ip": ip,
                "outside": outside,
                "baseline_day": 2,
                "baseline_second": p.at(10, 50),
            },
        )
    )


def _plan_ransomware(p: _Planner) -> None:
    role = p.org.role("prod", "legacy-automation")
    prod = p.org.account("prod").account_id
    new_key = Key(
        key_id=uuid4(p.rng),
        account_id=prod,
        region=p.org.home_region,
        alias="",
        spec="SYMMETRIC_DEFAULT",
        purpose="attacker",
        production=False,
        rotation_enabled=False,
        rotation_details_2025=False,
        material_id=hex_string(p.rng, 64),
    )
    victims = tuple(
        k
        for k in p.org.keys
        if k.account_id == prod
        and k.purpose in ("app", "s3")
        and k.arn not in p.used_keys
        and k.region == p.org.home_region
    )[:3]
    count = min(800, max(200, round(0.02 * p.plan.events_per_day)))
    p.add(
        ScenarioSpec(
            sid="S06-ransomware_imported_key",
            kind="ransomware_imported_key",
            malicious=True,
            day=slot_day(p.plan.days, 5),
            second=p.at(20, 5),
            description=(
                f"Role {role.name} created a key with imported (EXTERNAL) material, imported it, "
                f"re-encrypted data under it ({count} ReEncrypt/GenerateDataKey calls within the "
                "hour), then scheduled the key for deletion in 7 days and deleted the imported "
                "material: data sealed under a key the organisation cannot recover."
            ),
            actor=role,
            keys=(new_key, *victims),
            count=count,
            details={"ip": f"203.0.113.{p.rng.randrange(10, 250)}"},
        ),
        reserve_keys=False,
    )


def _plan_rotation_disabled(p: _Planner) -> None:
    role, login, ip = p.admin_human(0)
    rotating = sorted(
        (k for k in p.org.keys if k.rotation_enabled and k.account_id == role.account_id),
        key=lambda k: k.region != p.org.home_region,
    )
    fresh = [k for k in rotating if k.production and k.arn not in p.used_keys]
    key = (fresh or rotating)[0]
    second = 2 * 3600 + 30 * 60 + p.rng.randrange(300)
    p.add(
        ScenarioSpec(
            sid="S07-rotation_disabled_at_night",
            kind="rotation_disabled_at_night",
            malicious=True,
            day=slot_day(p.plan.days, 2),
            second=second,
            description=(
                f"At about 02:30 UTC, outside working hours, an administrator session ({login}) "
                f"disabled automatic rotation of the production key {key.alias}."
            ),
            actor=role,
            keys=(key,),
            details={"session": login, "ip": ip},
        )
    )


def _plan_grant_outside(p: _Planner) -> None:
    role = p.org.role("prod", "github-actions-deploy")
    key = next(k for k in p.org.keys if k.purpose == "s3" and k.account_id == role.account_id)
    outside = p.org.outside_accounts[1 % len(p.org.outside_accounts)]
    p.add(
        ScenarioSpec(
            sid="S08-grant_to_outside_principal",
            kind="grant_to_outside_principal",
            malicious=True,
            day=slot_day(p.plan.days, 3),
            second=p.at(11),
            description=(
                f"Role {role.name} created a grant on {key.alias} letting "
                f"arn:aws:iam::{outside}:role/external-processor, outside the organisation, "
                "Decrypt and GenerateDataKey."
            ),
            actor=role,
            keys=(key,),
            details={"grantee": f"arn:aws:iam::{outside}:role/external-processor"},
        )
    )


def _plan_human_new_region(p: _Planner) -> None:
    human = next(h for h in p.org.humans if not h.admin and isinstance(h.principal, Role))
    region = p.org.regions[1]
    keys = tuple(
        k for k in p.org.keys if k.region == region and k.account_id == human.principal.account_id
    )[:2]
    assert isinstance(human.principal, Role)
    p.add(
        ScenarioSpec(
            sid="S09-human_3am_new_region",
            kind="human_3am_new_region",
            malicious=True,
            day=slot_day(p.plan.days, 4),
            second=3 * 3600 + p.rng.randrange(600),
            description=(
                f"{human.login}, who works weekday office hours in {p.org.home_region}, used KMS "
                f"at about 03:00 UTC in {region}, a region where the role never used KMS before, "
                "from a new address and with a new user agent."
            ),
            actor=human.principal,
            keys=keys,
            count=p.rng.randint(12, 20),
            details={"session": human.login, "ip": f"198.51.100.{p.rng.randrange(10, 250)}"},
        )
    )


def _plan_root(p: _Planner) -> None:
    acct = p.org.account("prod").account_id
    keys = tuple(
        k
        for k in p.org.keys
        if k.account_id == acct
        and k.region == p.org.home_region
        and k.spec == "SYMMETRIC_DEFAULT"
        and k.arn not in p.used_keys
    )[:3]
    p.add(
        ScenarioSpec(
            sid="S10-root_kms_usage",
            kind="root_kms_usage",
            malicious=True,
            day=slot_day(p.plan.days, 5),
            second=9 * 3600 + 40 * 60 + p.rng.randrange(600),
            description=(
                f"The root user of account {acct} signed in to the console and listed, described "
                "and read policies of KMS keys, then decrypted with root access keys."
            ),
            actor=f"root:{acct}",
            keys=keys,
            details={"ip": f"203.0.113.{p.rng.randrange(10, 250)}"},
        )
    )


def _plan_monitoring_disabled(p: _Planner) -> None:
    org, plan = p.org, p.plan
    owner = org.management_account if plan.org_id else org.account("staging")
    affected = tuple(a.account_id for a in org.accounts) if plan.org_id else (owner.account_id,)
    day = slot_day(plan.days, 6)
    second = 21 * 3600 + 40 * 60 + p.rng.randrange(600)
    p.blackouts.append(Blackout(affected, day_epoch(plan.start, day) + second + 60))
    role = org.role(owner.name, "platform-admin")
    p.add(
        ScenarioSpec(
            sid="S11-kms_monitoring_disabled",
            kind="kms_monitoring_disabled",
            malicious=True,
            day=day,
            second=second,
            description=(
                f"Role platform-admin in account {owner.account_id} changed the event selectors "
                "of the trail to exclude kms.amazonaws.com management events; KMS events of the "
                "affected accounts stop appearing a minute later."
            ),
            actor=role,
            details={"login": p.admin_human(1)[1], "ip": p.admin_human(1)[2]},
        )
    )


def _plan_load_test(p: _Planner) -> None:
    plan = p.plan
    load = p.app_workloads()[1]
    day = slot_day(plan.days, 3)
    # every workload of the role doubles: the role, not one of its keys, is under test
    for wl in plan.workloads:
        if wl.principal == load.principal:
            p.used_workloads.add(wl.wid)
            p.used_keys.update(k.arn for k in wl.keys if k.purpose == "app")
            p.boosts.append(Boost(wl.wid, day, 14, 17, 2.0))
            p.tags.append(WorkloadTag(wl.wid, "D03-decoy_load_test", day, day, 14, 17))
    p.specs.append(
        ScenarioSpec(
            sid="D03-decoy_load_test",
            kind="decoy_load_test",
            malicious=False,
            day=day,
            second=14 * 3600,
            description=(
                f"A load test: {load.actor.rsplit('/', 1)[-1]} doubles its usual volume on "
                f"{load.keys[0].alias} for three hours, from its usual hosts and user agent."
            ),
            actor=load.principal,
            keys=load.keys,
            workload=load.wid,
        )
    )


def _plan_decoys(p: _Planner) -> None:
    plan = p.plan
    rampup = next(wl for wl in plan.workloads if wl.category == "rampup")
    first = rampup.active_from_day
    p.tags.append(WorkloadTag(rampup.wid, "D01-decoy_new_service_rampup", first, plan.days - 1))
    p.specs.append(
        ScenarioSpec(
            sid="D01-decoy_new_service_rampup",
            kind="decoy_new_service_rampup",
            malicious=False,
            day=first,
            second=0,
            description=(
                f"A new service, {rampup.actor.rsplit('/', 1)[-1]}, starts using "
                f"{rampup.keys[0].alias} on day {first} and its volume grows every day as it is "
                "rolled out: new, but gradual and from the organisation's own network."
            ),
            actor=rampup.principal,
            keys=rampup.keys,
            workload=rampup.wid,
        )
    )
    batch = next(wl for wl in plan.workloads if wl.schedule == "monthly")
    runs = [d for d in plan.batch_days if d in scenario_days(plan.days)]
    if runs:
        run = runs[-1]
        earlier = [d for d in plan.batch_days if d < run]
        history = (
            f"it also ran on {plan.date_of(earlier[-1])}"
            if earlier
            else "it runs on the same day every month (the previous run is before this window)"
        )
        p.tags.append(WorkloadTag(batch.wid, "D02-decoy_monthly_batch", run, run, 1, 4))
        p.specs.append(
            ScenarioSpec(
                sid="D02-decoy_monthly_batch",
                kind="decoy_monthly_batch",
                malicious=False,
                day=run,
                second=3600,
                description=(
                    f"The month-end batch role {batch.actor.rsplit('/', 1)[-1]} decrypts "
                    f"{batch.run_records} times between 01:00 and 04:00 UTC; {history}."
                ),
                actor=batch.principal,
                keys=batch.keys,
                workload=batch.wid,
            )
        )
    rotated = [r for r in plan.rotations if r.scenario_id] or []
    p.specs.append(
        ScenarioSpec(
            sid="D04-decoy_auto_rotation",
            kind="decoy_auto_rotation",
            malicious=False,
            day=min((r.day for r in rotated), default=0),
            second=0,
            description=(
                "AWS rotated key material of keys with automatic rotation enabled, on their yearly "
                "anniversary (RotateKey service events, no caller)."
            ),
            actor="service:kms.amazonaws.com",
            keys=tuple(r.key for r in rotated),
        )
    )


def _standing_contexts(p: _Planner, via: str, account_id: str, key: str) -> list[JsonObject]:
    """The distinct secret or parameter contexts the organisation's workloads read."""
    seen: dict[str, JsonObject] = {}
    for wl in p.plan.workloads:
        if wl.via == via and wl.account_id == account_id:
            for context in wl.contexts:
                seen.setdefault(str(context.get(key)), context)
    return [seen[name] for name in sorted(seen)]


_ADMIN_SECRETS = (
    "platform/break-glass-password", "platform/terraform-state-token", "platform/github-app-key",
    "platform/pagerduty-api-key", "platform/datadog-api-key", "security/siem-hec-token",
    "platform/rds-master-password", "platform/vpn-shared-secret",
)  # fmt: skip
_CI_SECRETS = (
    "ci/npm-publish-token", "ci/dockerhub-password", "ci/cosign-private-key", "ci/slack-webhook",
    "ci/sonarcloud-token", "ci/prod-deploy-ssh-key", "ci/staging-deploy-ssh-key",
    "ci/pypi-token", "ci/maven-settings", "ci/codecov-token", "ci/sentry-auth-token",
    "ci/snyk-token", "ci/argocd-admin-password", "ci/helm-repo-password", "ci/jira-api-token",
    "ci/apple-signing-certificate", "ci/android-keystore", "ci/firebase-service-account",
    "ci/terraform-cloud-token", "ci/vault-approle-secret", "ci/gpg-release-key",
    "ci/cloudflare-api-token",
)  # fmt: skip


def _secret_context(p: _Planner, region: str, account_id: str, name: str) -> JsonObject:
    return {
        "SecretARN": f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-"
        f"{hex_string(p.rng, 6)}",
        "SecretVersionId": uuid4(p.rng),
    }


def _plan_bulk_secret_theft(p: _Planner) -> None:
    """Stratus Red Team's secretsmanager-batch-retrieve-secrets and
    ssm-retrieve-securestring-parameters, run with a person's leaked access key."""
    org = p.org
    prod = org.account("prod").account_id
    human = next(h for h in org.humans if isinstance(h.principal, User))
    secrets_key = org.key("prod", "alias/secrets-manager")
    ssm_key = org.key("prod", "alias/ssm-parameters")
    secrets = _standing_contexts(p, SECRETS_SERVICE, prod, "SecretARN")
    secrets += [_secret_context(p, secrets_key.region, prod, name) for name in _ADMIN_SECRETS]
    parameters = _standing_contexts(p, SSM_VIA, prod, "PARAMETER_ARN")
    ip = f"198.51.100.{p.rng.randrange(10, 250)}"
    p.add(
        ScenarioSpec(
            sid="S12-bulk_secret_theft",
            kind="bulk_secret_theft",
            malicious=True,
            day=slot_day(p.plan.days, 3),
            second=19 * 3600 + p.rng.randrange(1800),
            description=(
                f"The IAM user {human.login}'s access key, used from {ip}, an address the person "
                f"never used, listed and batch-read all {len(secrets)} Secrets Manager secrets "
                f"and all {len(parameters)} SecureString parameters of account {prod} within "
                "minutes; KMS logged one Decrypt per secret and parameter, invoked by the "
                "services."
            ),
            actor=human.principal,
            keys=(secrets_key, ssm_key),
            count=len(secrets) + len(parameters),
            details={"ip": ip, "secrets": tuple(secrets), "parameters": tuple(parameters)},
        )
    )


def _plan_ci_secret_dump(p: _Planner) -> None:
    """A CI role whose token was stolen (tj-actions/changed-files-style) dumps the CI secrets."""
    org = p.org
    shared = org.account("shared-services").account_id
    role = org.role("shared-services", "github-actions-deploy")
    key = org.key("shared-services", "alias/ci-secrets")
    usual = _standing_contexts(p, SECRETS_SERVICE, shared, "SecretARN")
    secrets = usual + [_secret_context(p, key.region, shared, name) for name in _CI_SECRETS]
    ip = f"203.0.113.{p.rng.randrange(10, 250)}"
    p.add(
        ScenarioSpec(
            sid="S13-ci_role_secret_dump",
            kind="ci_role_secret_dump",
            malicious=True,
            day=slot_day(p.plan.days, 4),
            second=23 * 3600 + p.rng.randrange(1200),
            description=(
                f"Role {role.name} in account {shared}, which reads one registry token during "
                f"office hours, called ListSecrets and BatchGetSecretValue at night from {ip} and "
                f"decrypted {len(secrets)} CI secrets (signing keys, deploy keys, publishing "
                "tokens) within minutes."
            ),
            actor=role,
            keys=(key,),
            count=len(secrets),
            details={"ip": ip, "secrets": tuple(secrets), "session": "GitHubActions"},
        )
    )


def _plan_mass_key_deletion(p: _Planner) -> None:
    """Destruction by key deletion: a stolen break-glass session schedules the deletion of
    several production keys within minutes; every workload using them fails from then on."""
    org, plan = p.org, p.plan
    prod = org.account("prod").account_id
    # keys of other scenarios and of the decoys' workloads stay alive: their labels must hold
    tagged = {tag.wid for tag in p.tags} | p.used_workloads
    protected = p.used_keys | {k.arn for spec in p.specs for k in spec.keys}
    protected |= {
        k.arn
        for wl in plan.workloads
        if wl.wid in tagged or wl.category in ("rampup", "monthly-batch")
        for k in wl.keys
    }
    keys = tuple(
        sorted(
            (
                k
                for k in org.keys
                if k.account_id == prod
                and k.purpose not in ("secrets", "ssm")
                and k.arn not in protected
            ),
            key=lambda k: (k.region != org.home_region, k.alias),
        )
    )[:4]
    if not keys:
        return
    role = org.role("prod", "break-glass")
    day = slot_day(plan.days, 6)
    second = 17 * 3600 + p.rng.randrange(1800)
    scheduled = [second + 90 + 25 * i + p.rng.randrange(15) for i in range(len(keys))]
    for key, at in zip(keys, scheduled, strict=True):
        p.outages.append(
            KeyOutage(
                key.arn,
                day_epoch(plan.start, day) + at,
                "KMSInvalidStateException",
                f"{key.arn} is pending deletion.",
                "S14-mass_key_deletion",
            )
        )
    aliases = ", ".join(k.alias for k in keys)
    p.add(
        ScenarioSpec(
            sid="S14-mass_key_deletion",
            kind="mass_key_deletion",
            malicious=True,
            day=day,
            second=second,
            description=(
                f"Role break-glass, assumed from an unknown address, listed the keys and "
                f"scheduled {len(keys)} production keys ({aliases}) for deletion in 7 days "
                "within two minutes; the workloads using them failed from then on "
                "(KMSInvalidStateException: pending deletion)."
            ),
            actor=role,
            keys=keys,
            details={
                "ip": f"203.0.113.{p.rng.randrange(10, 250)}",
                "session": p.admin_human(1)[1],
                "scheduled": tuple(scheduled),
            },
        )
    )


_PLANNERS: tuple[Callable[[_Planner], None], ...] = (
    _plan_exfiltration,
    _plan_load_test,
    _plan_failed_enumeration,
    _plan_disable_then_delete,
    _plan_outside_caller,
    _plan_policy_opened,
    _plan_ransomware,
    _plan_rotation_disabled,
    _plan_grant_outside,
    _plan_human_new_region,
    _plan_root,
    _plan_monitoring_disabled,
    _plan_decoys,
    _plan_bulk_secret_theft,
    _plan_ci_secret_dump,
    _plan_mass_key_deletion,
)
