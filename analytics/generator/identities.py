"""``userIdentity`` blocks in every shape CloudTrail logs, and the label ``actor`` convention.

The blocks are built once per credential session and shared by all records of that session:
a session's identity does not change between calls, and sharing the dict keeps the hot path to
a pointer copy.
"""

from __future__ import annotations

import hashlib
from typing import Any

from analytics.generator.organisation import Role, User

Identity = dict[str, Any]


def assumed_role(
    role: Role,
    session: str,
    access_key: str,
    created: str,
    *,
    mfa: bool = False,
    invoked_by: str | None = None,
) -> Identity:
    """An assumed-role session; ``invoked_by`` when a service calls with these credentials."""
    identity: Identity = {
        "type": "AssumedRole",
        "principalId": f"{role.role_id}:{session}",
        "arn": f"arn:aws:sts::{role.account_id}:assumed-role/{role.name}/{session}",
        "accountId": role.account_id,
        "accessKeyId": access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role.role_id,
                "arn": role.arn,
                "accountId": role.account_id,
                "userName": role.name,
            },
            "attributes": {"creationDate": created, "mfaAuthenticated": "true" if mfa else "false"},
        },
    }
    if invoked_by is not None:
        identity["invokedBy"] = invoked_by
    return identity


def iam_user(user: User, *, invoked_by: str | None = None) -> Identity:
    """A long-term IAM user key."""
    identity: Identity = {
        "type": "IAMUser",
        "principalId": user.user_id,
        "arn": user.arn,
        "accountId": user.account_id,
        "accessKeyId": user.access_key_id,
        "userName": user.name,
    }
    if invoked_by is not None:
        identity["invokedBy"] = invoked_by
    return identity


def aws_service(service: str) -> Identity:
    """An AWS service acting as itself (CloudTrail encrypting logs, CloudWatch Logs, …)."""
    return {"type": "AWSService", "invokedBy": service}


def kms_internal(account_id: str) -> Identity:
    """The typeless identity of KMS-internal service events such as RotateKey."""
    return {"accountId": account_id, "invokedBy": "AWS Internal"}


def root(account_id: str, access_key: str, created: str) -> Identity:
    """The account root user (console session with MFA)."""
    return {
        "type": "Root",
        "principalId": account_id,
        "arn": f"arn:aws:iam::{account_id}:root",
        "accountId": account_id,
        "accessKeyId": access_key,
        "sessionContext": {"attributes": {"creationDate": created, "mfaAuthenticated": "true"}},
    }


def federated_user(issuer: User, name: str, access_key: str, created: str) -> Identity:
    """A GetFederationToken session issued by an IAM user (a reporting broker)."""
    return {
        "type": "FederatedUser",
        "principalId": f"{issuer.account_id}:{name}",
        "arn": f"arn:aws:sts::{issuer.account_id}:federated-user/{name}",
        "accountId": issuer.account_id,
        "accessKeyId": access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "IAMUser",
                "principalId": issuer.user_id,
                "arn": issuer.arn,
                "accountId": issuer.account_id,
                "userName": issuer.name,
            },
            "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
        },
    }


def web_identity_user(account_id: str, subject: str) -> Identity:
    """A GitHub Actions OIDC token exchanging itself for role credentials."""
    provider = f"arn:aws:iam::{account_id}:oidc-provider/token.actions.githubusercontent.com"
    return {
        "type": "WebIdentityUser",
        "principalId": f"{provider}:sts.amazonaws.com:{subject}",
        "userName": subject,
        "identityProvider": provider,
    }


def identity_center_user(account_id: str, user_id: str, store_id: str, credential: str) -> Identity:
    """An IAM Identity Center user acting in the access portal."""
    return {
        "type": "IdentityCenterUser",
        "accountId": account_id,
        "onBehalfOf": {
            "userId": user_id,
            "identityStoreArn": f"arn:aws:identitystore::{account_id}:identitystore/{store_id}",
        },
        "credentialId": credential,
    }


def identity_center_user_id(store_id: str, login: str) -> str:
    """Identity Center user ids: the store's suffix and a uuid, stable per person."""
    h = hashlib.sha256(f"{store_id}/{login}".encode()).hexdigest()
    return f"{store_id.removeprefix('d-')}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def label_actor(identity: Identity) -> str:
    """The ``actor`` a label names for a ``userIdentity`` block, as keytrail normalises it: the
    role of an assumed-role session, the user ARN, ``root:<account>`` or ``service:<name>``."""
    kind = identity.get("type")
    if kind == "AssumedRole":
        return str(identity["sessionContext"]["sessionIssuer"]["arn"])
    if kind == "Root":
        return f"root:{identity['accountId']}"
    if kind == "AWSService":
        return f"service:{identity['invokedBy']}"
    return str(identity.get("arn", f"service:{identity.get('invokedBy', 'unknown')}"))
