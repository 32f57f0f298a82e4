"""CloudTrail records: field order, request/response shapes and error messages.

One generic builder lays the fields out in the order CloudTrail writes them; the KMS helpers
fill ``requestParameters``/``responseElements`` the way KMS logs each operation (no plaintext,
no ciphertext, ``keyId`` as written by the caller, the key ARN always in ``resources``).
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from analytics.generator.organisation import Key

Record = dict[str, Any]
JsonObject = dict[str, Any]

KMS = "kms.amazonaws.com"
AWS_INTERNAL = "AWS Internal"

# operations whose responseElements carry something; all others log null
KMS_READ_ONLY = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "ReEncrypt",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "GenerateRandom",
        "DescribeKey",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "GetParametersForImport",
        "GetPublicKey",
        "ListAliases",
        "ListGrants",
        "ListKeyPolicies",
        "ListKeyRotations",
        "ListKeys",
        "ListResourceTags",
    }
)
CRYPTO_OPS = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncrypt",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
    }
)
_KEYLESS_OPS = frozenset({"ListAliases", "ListKeys", "GenerateRandom"})
THROTTLED_MESSAGE = (
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
)
INCORRECT_KEY_MESSAGE = (
    "The key ID in the request does not identify a KMS key that can perform this operation."
)

_TLS_MODERN = ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
_TLS_LEGACY = ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
_tls_cache: dict[tuple[str, str, bool], JsonObject] = {}


def tls_details(service: str, region: str | None, *, legacy: bool = False) -> JsonObject:
    """The (shared) ``tlsDetails`` block of a direct call; ``region`` None: global endpoint."""
    cache_key = (service, region or "", legacy)
    found = _tls_cache.get(cache_key)
    if found is None:
        version, suite = _TLS_LEGACY if legacy else _TLS_MODERN
        host = f"{service.split('.')[0]}.{region}.amazonaws.com" if region else service
        found = {"tlsVersion": version, "cipherSuite": suite, "clientProvidedHostHeader": host}
        _tls_cache[cache_key] = found
    return found


def record(
    *,
    version: str,
    identity: JsonObject,
    time: str,
    source: str,
    name: str,
    region: str,
    ip: str,
    agent: str,
    params: JsonObject | None,
    response: JsonObject | None,
    request_id: str | None,
    event_id: str,
    read_only: bool,
    resources: list[dict[str, str]] | None,
    recipient: str,
    event_type: str = "AwsApiCall",
    management: bool = True,
    category: str = "Management",
    tls: JsonObject | None = None,
    additional: JsonObject | None = None,
    vpce: str | None = None,
    shared_event_id: str | None = None,
    service_details: JsonObject | None = None,
    console: bool = False,
) -> Record:
    """One CloudTrail record with its fields in CloudTrail's order; optional ones only if set."""
    rec: Record = {
        "eventVersion": version,
        "userIdentity": identity,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": params,
        "responseElements": response,
    }
    if additional is not None:
        rec["additionalEventData"] = additional
    if request_id is not None:
        rec["requestID"] = request_id
    rec["eventID"] = event_id
    rec["readOnly"] = read_only
    if resources is not None:
        rec["resources"] = resources
    rec["eventType"] = event_type
    rec["managementEvent"] = management
    rec["recipientAccountId"] = recipient
    if shared_event_id is not None:
        rec["sharedEventID"] = shared_event_id
    if vpce is not None:
        rec["vpcEndpointId"] = vpce
    if service_details is not None:
        rec["serviceEventDetails"] = service_details
    rec["eventCategory"] = category
    if tls is not None:
        rec["tlsDetails"] = tls
    if console:
        rec["sessionCredentialFromConsole"] = "true"
    return rec


def with_error(rec: Record, code: str, message: str | None) -> Record:
    """The same record as a failed call: errorCode/errorMessage after userAgent, no response."""
    out: Record = {}
    for field, value in rec.items():
        out[field] = value
        if field == "userAgent":
            out["errorCode"] = code
            if message is not None:
                out["errorMessage"] = message
    out["responseElements"] = None
    return out


def with_shared_event_id(rec: Record, shared_event_id: str) -> Record:
    """Insert ``sharedEventID`` after ``recipientAccountId`` (cross-account copies)."""
    out: Record = {}
    for field, value in rec.items():
        out[field] = value
        if field == "recipientAccountId":
            out["sharedEventID"] = shared_event_id
    return out


# --- KMS request parameters -------------------------------------------------------------------


def key_reference(key: Key, style: str) -> str:
    """``keyId`` as a caller writes it: key ARN, bare key id or alias name."""
    if style == "alias":
        return key.alias
    if style == "id":
        return key.key_id
    return key.arn


def kms_params(
    op: str,
    key_ref: str,
    context: JsonObject | None,
    *,
    decrypt_names_key: bool = False,
) -> JsonObject | None:
    """``requestParameters`` for the everyday KMS operations."""
    if op == "Decrypt":
        params: JsonObject = {}
        if decrypt_names_key:
            params["keyId"] = key_ref
        if context:
            params["encryptionContext"] = context
        params["encryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
        return params
    if op == "GenerateDataKey":
        if context:
            return {"keyId": key_ref, "encryptionContext": context, "keySpec": "AES_256"}
        return {"keyId": key_ref, "numberOfBytes": 32}
    if op == "GenerateDataKeyWithoutPlaintext":
        params = {"keyId": key_ref, "keySpec": "AES_256"}
        if context:
            params["encryptionContext"] = context
        return params
    if op == "Encrypt":
        params = {"keyId": key_ref}
        if context:
            params["encryptionContext"] = context
        params["encryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
        return params
    if op in ("Sign", "Verify"):
        return {
            "keyId": key_ref,
            "messageType": "DIGEST",
            "signingAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
        }
    if op in ("GenerateMac", "VerifyMac"):
        return {"keyId": key_ref, "macAlgorithm": "HMAC_SHA_256"}
    if op == "ListAliases":
        return {"limit": 100}
    if op == "ListKeys":
        return {"limit": 1000}
    if op == "GetKeyPolicy":
        return {"keyId": key_ref, "policyName": "default"}
    if op == "GenerateRandom":
        return {"numberOfBytes": 32}
    return {"keyId": key_ref}


def kms_resources(op: str, key: Key) -> list[dict[str, str]] | None:
    return None if op in _KEYLESS_OPS else key.resources


def reencrypt_params(source: Key, destination: Key, context: JsonObject | None) -> JsonObject:
    params: JsonObject = {
        "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "destinationKeyId": destination.arn,
        "destinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
    if context:
        params["sourceEncryptionContext"] = context
        params["destinationEncryptionContext"] = context
    return params


def reencrypt_resources(source: Key, destination: Key) -> list[dict[str, str]]:
    return [*source.resources, *destination.resources]


def kms_date(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> str:
    """The Java-style timestamp KMS logs in responseElements (``Dec 5, 2026, 12:00:00 AM``)."""
    suffix = "AM" if hour < 12 else "PM"
    twelve = hour % 12 or 12
    return f"{day:%b} {day.day}, {day.year}, {twelve}:{minute:02d}:{second:02d} {suffix}"


def deletion_date(today: date, pending_days: int) -> str:
    """KMS rounds the deletion date up to the next midnight after the waiting period."""
    return kms_date(today + timedelta(days=pending_days + 1))


# --- errors -----------------------------------------------------------------------------------


def access_denied_message(
    principal_arn: str, op: str, resource: str, *, identity_policy: bool
) -> str:
    reason = "identity-based" if identity_policy else "resource-based"
    return (
        f"User: {principal_arn} is not authorized to perform: kms:{op} on resource: {resource}"
        f" because no {reason} policy allows the kms:{op} action"
    )


def benign_kms_error(
    op: str, key: Key, principal_arn: str, rng: random.Random
) -> tuple[str, str | None]:
    """An everyday failure: throttling, a stale ciphertext, a missing permission."""
    roll = rng.random()
    if roll < 0.45:
        return "ThrottlingException", THROTTLED_MESSAGE
    if roll < 0.7:
        return "AccessDenied", access_denied_message(
            principal_arn, op, key.arn, identity_policy=True
        )
    if op == "Decrypt" and roll < 0.85:
        return "InvalidCiphertextException", None
    if op in ("Decrypt", "ReEncrypt") and roll < 0.95:
        return "IncorrectKeyException", INCORRECT_KEY_MESSAGE
    if not key.production and roll < 0.97:
        # someone disabled a staging key for a test and forgot it
        return "KMSInvalidStateException", f"{key.arn} is disabled."
    if roll < 0.97:
        return "ThrottlingException", THROTTLED_MESSAGE
    return "DependencyTimeoutException", "The system timed out while trying to fulfill the request."
