"""Records of the secret-harvesting scenarios: bulk reads of Secrets Manager and Parameter Store.

What CloudTrail shows of such a read, and what these emitters write:

* the caller's own calls to the services, from its address and tool: ``ListSecrets``,
  ``BatchGetSecretValue`` (up to 20 secrets a call, each also logged as a ``GetSecretValue``),
  ``DescribeParameters`` and ``GetParametersByPath`` (10 parameters a page, ``withDecryption``);
* one KMS ``Decrypt`` per secret or parameter opened, made by the service with the caller's
  credentials: ``userIdentity`` is the caller plus ``invokedBy``, ``sourceIPAddress`` and
  ``userAgent`` are the service (``secretsmanager.amazonaws.com``; Parameter Store logs
  ``AWS Internal``), and the encryption context names the secret (``SecretARN`` +
  ``SecretVersionId``) or the parameter (``PARAMETER_ARN``).
"""

from __future__ import annotations

from analytics.generator.events import JsonObject, kms_params, record, tls_details
from analytics.generator.identities import Identity, assumed_role, iam_user
from analytics.generator.organisation import Key, Role, User
from analytics.generator.plan import ScenarioSpec
from analytics.generator.randomness import access_key_id, uuid4
from analytics.generator.rhythm import iso_time
from analytics.generator.traffic import DayTraffic
from analytics.generator.workloads import SECRETS_SERVICE, SSM_VIA, Workload

SECRETS_SOURCE = "secretsmanager.amazonaws.com"
SSM_SOURCE = "ssm.amazonaws.com"
BATCH_SIZE = 20  # BatchGetSecretValue returns at most 20 secrets a call
PAGE_SIZE = 10  # GetParametersByPath returns at most 10 parameters a page
ATTACKER_AGENT = (
    "Boto3/1.34.93 md/Botocore#1.34.93 ua/2.0 os/linux#6.8.0-31-generic md/arch#x86_64"
    " lang/python#3.12.3 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.93"
)


def _identity(t: DayTraffic, spec: ScenarioSpec) -> Identity:
    """The caller's identity for its own calls (the KMS calls add ``invokedBy``)."""
    principal = spec.actor
    if isinstance(principal, User):
        return iam_user(principal)
    assert isinstance(principal, Role), spec.sid
    created = iso_time(t.prefix, max(0, spec.second - 300))
    key = access_key_id(t.rng, temporary=True)
    return assumed_role(principal, spec.details["session"], key, created)


def _service_call(
    t: DayTraffic,
    spec: ScenarioSpec,
    identity: Identity,
    second: int,
    source: str,
    name: str,
    params: JsonObject,
    region: str,
) -> None:
    rec = record(
        version="1.09",
        identity=identity,
        time=iso_time(t.prefix, second),
        source=source,
        name=name,
        region=region,
        ip=spec.details["ip"],
        agent=ATTACKER_AGENT,
        params=params,
        response=None,
        request_id=uuid4(t.rng),
        event_id=uuid4(t.rng),
        read_only=True,
        resources=None,
        recipient=str(identity["accountId"]),
        tls=tls_details(source, region),
    )
    t.push(second, rec, spec.sid)


def _decrypt_for(
    t: DayTraffic, spec: ScenarioSpec, identity: Identity, second: int, key: Key, via: str,
    context: JsonObject,
) -> None:  # fmt: skip
    """The KMS Decrypt a service makes for the caller to open one secret or parameter."""
    principal = spec.actor
    assert isinstance(principal, Role | User), spec.sid
    service = Workload(
        wid=100_012,
        category="scenario",
        family="kms",
        principal=principal,
        service=None,
        account_id=principal.account_id,
        via=via,
        version="1.11",
    )
    t.kms_record(
        service,
        second,
        "Decrypt",
        key,
        kms_params("Decrypt", key.arn, context),
        None,
        identity={**identity, "invokedBy": via},
        tag=spec.sid,
    )


def _read_secrets(
    t: DayTraffic, spec: ScenarioSpec, identity: Identity, second: int, key: Key
) -> int:
    """ListSecrets, then BatchGetSecretValue in batches of 20; returns the next free second."""
    secrets: tuple[JsonObject, ...] = spec.details["secrets"]
    _service_call(t, spec, identity, second, SECRETS_SOURCE, "ListSecrets",
                  {"maxResults": 100}, key.region)  # fmt: skip
    second += 4 + t.rng.randrange(4)
    for start in range(0, len(secrets), BATCH_SIZE):
        batch = secrets[start : start + BATCH_SIZE]
        arns = [str(c["SecretARN"]) for c in batch]
        _service_call(t, spec, identity, second, SECRETS_SOURCE, "BatchGetSecretValue",
                      {"secretIdList": arns}, key.region)  # fmt: skip
        for context in batch:
            _service_call(t, spec, identity, second, SECRETS_SOURCE, "GetSecretValue",
                          {"secretId": context["SecretARN"]}, key.region)  # fmt: skip
            _decrypt_for(t, spec, identity, second, key, SECRETS_SERVICE, context)
        second += 3 + t.rng.randrange(6)
    return second


def _read_parameters(
    t: DayTraffic, spec: ScenarioSpec, identity: Identity, second: int, key: Key
) -> None:
    """DescribeParameters, then GetParametersByPath with decryption, 10 parameters a page."""
    parameters: tuple[JsonObject, ...] = spec.details["parameters"]
    _service_call(t, spec, identity, second, SSM_SOURCE, "DescribeParameters",
                  {"maxResults": 50}, key.region)  # fmt: skip
    second += 5 + t.rng.randrange(5)
    for start in range(0, len(parameters), PAGE_SIZE):
        params: JsonObject = {"path": "/", "recursive": True, "withDecryption": True,
                              "maxResults": PAGE_SIZE}  # fmt: skip
        if start:
            params["nextToken"] = uuid4(t.rng)
        _service_call(t, spec, identity, second, SSM_SOURCE, "GetParametersByPath", params,
                      key.region)  # fmt: skip
        for context in parameters[start : start + PAGE_SIZE]:
            _decrypt_for(t, spec, identity, second, key, SSM_VIA, context)
        second += 2 + t.rng.randrange(4)


def emit_bulk_secret_theft(t: DayTraffic, spec: ScenarioSpec) -> None:
    secrets_key, ssm_key = spec.keys
    identity = _identity(t, spec)
    after = _read_secrets(t, spec, identity, spec.second, secrets_key)
    _read_parameters(t, spec, identity, after + 20 + t.rng.randrange(40), ssm_key)


def emit_ci_secret_dump(t: DayTraffic, spec: ScenarioSpec) -> None:
    (key,) = spec.keys
    _read_secrets(t, spec, _identity(t, spec), spec.second, key)
