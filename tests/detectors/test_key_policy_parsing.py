"""analytics.detect.detectors.policy: every grammar form of a key policy, and diffs in words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.detect.detectors.policy import Principal, account_of, diff, parse_policy

OWNER = "111122223333"
OUTSIDE = "999988887777"


def _policy(*statements: Any, single: bool = False) -> str:
    body: Any = statements[0] if single else list(statements)
    return json.dumps({"Version": "2012-10-17", "Statement": body})


def _allow(principal: Any, action: Any = "kms:Decrypt", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


ADMIN = _allow({"AWS": f"arn:aws:iam::{OWNER}:root"}, "kms:*")


@pytest.mark.parametrize(
    "principal",
    ["*", {"AWS": "*"}, {"AWS": ["*"]}, {"AWS": [f"arn:aws:iam::{OWNER}:root", "*"]}],
    ids=["bare-star", "aws-star", "aws-list-star", "star-among-arns"],
)
def test_every_wildcard_principal_form_is_public(principal: Any) -> None:
    policy = parse_policy(_policy(ADMIN, _allow(principal)))
    assert policy.is_public
    assert policy.public_actions() == {"kms:Decrypt"}


@pytest.mark.parametrize(
    "principal",
    [
        f"arn:aws:iam::{OWNER}:role/app",
        {"AWS": f"arn:aws:iam::{OWNER}:role/app"},
        {"AWS": [f"arn:aws:iam::{OWNER}:role/app", OWNER]},
        {"Service": "logs.us-east-1.amazonaws.com"},
        {"Service": ["cloudtrail.amazonaws.com", "s3.amazonaws.com"]},
    ],
    ids=["string-arn", "aws-arn", "aws-list", "service", "service-list"],
)
def test_named_principals_are_not_public(principal: Any) -> None:
    assert not parse_policy(_policy(_allow(principal))).is_public


def test_statement_may_be_a_single_object() -> None:
    policy = parse_policy(_policy(_allow("*"), single=True))
    assert len(policy.statements) == 1
    assert policy.is_public


def test_policy_may_arrive_decoded_or_double_encoded() -> None:
    text = _policy(_allow("*"))
    assert parse_policy(json.loads(text)).is_public
    assert parse_policy(json.dumps(text)).is_public


def test_action_string_or_list_and_case_of_the_prefix() -> None:
    policy = parse_policy(_policy(_allow("*", ["KMS:Decrypt", "kms:Encrypt"])))
    assert policy.public_actions() == {"kms:Decrypt", "kms:Encrypt"}


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        {"StringEquals": {"kms:CallerAccount": OWNER}},
        {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{OWNER}:role/app-*"}},
        {
            "ForAnyValue:StringLike": {
                "aws:PrincipalOrgPaths": ["o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"]
            }
        },
        {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
    ],
    ids=["org-id", "caller-account", "principal-arn", "org-paths", "source-ip", "vpce"],
)
def test_restricting_conditions_keep_a_wildcard_private(condition: dict[str, Any]) -> None:
    assert not parse_policy(_policy(_allow("*", Condition=condition))).is_public


@pytest.mark.parametrize(
    "condition",
    [
        {"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
        {"StringLike": {"aws:PrincipalOrgID": "o-*"}},
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/app-*"}},
        {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        {"Bool": {"aws:SecureTransport": "true"}},
        {"ForAllValues:StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
    ],
    ids=["if-exists", "negated", "wildcard-org", "any-account-arn", "via-service", "tls",
         "for-all-values"],
)  # fmt: skip
def test_conditions_that_do_not_pin_the_caller_leave_it_public(
    condition: dict[str, Any],
) -> None:
    assert parse_policy(_policy(_allow("*", Condition=condition))).is_public


def test_a_deny_to_outsiders_fences_a_wildcard_allow() -> None:
    fence = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:*",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
    }
    assert not parse_policy(_policy(_allow("*"), fence)).is_public
    partial = {**fence, "Action": "kms:Encrypt"}
    assert parse_policy(_policy(_allow("*"), partial)).is_public


def test_not_principal_allow_is_public() -> None:
    statement = {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{OWNER}:root"},
                 "Action": "kms:Decrypt", "Resource": "*"}  # fmt: skip
    assert parse_policy(_policy(statement)).is_public


def test_deny_to_everyone_is_not_public() -> None:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    assert not parse_policy(_policy(statement)).is_public


def test_accounts_come_from_arns_and_bare_ids_but_not_unique_ids() -> None:
    policy = parse_policy(
        _policy(
            _allow({"AWS": [f"arn:aws:iam::{OUTSIDE}:root", "444455556666",
                            f"arn:aws:sts::{OWNER}:assumed-role/r/s", "AROAEXAMPLEID123"]})
        )
    )  # fmt: skip
    assert policy.accounts() == {OUTSIDE, "444455556666", OWNER}
    assert policy.unplaced_principals() == {"AROAEXAMPLEID123"}


@pytest.mark.parametrize(
    "text",
    ["{not json", "12", '"just a string"', "[]", '{"Statement": 5}', "{}", "[" * 5000],
    ids=["broken", "number", "string", "list", "bad-statement", "empty", "deep"],
)
def test_unreadable_policies_parse_to_an_error_not_an_exception(text: str) -> None:
    policy = parse_policy(text)
    assert policy.error is not None
    assert not policy.is_public


def test_odd_statement_members_are_tolerated() -> None:
    policy = parse_policy(
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": 42, "Action": {"a": 1}},
                                  "not a statement", _allow("*")]})
    )  # fmt: skip
    assert policy.error is None
    assert policy.is_public
    assert Principal("unreadable", "42") in policy.statements[0].principals


def test_diff_says_what_was_opened() -> None:
    old = parse_policy(_policy(ADMIN))
    new = parse_policy(
        _policy(ADMIN, _allow("*"), _allow({"AWS": f"arn:aws:iam::{OUTSIDE}:root"}, "kms:Encrypt"))
    )
    change = diff(old, new)
    assert change.changed and change.widened
    phrases = change.phrases(inside={OWNER})
    assert phrases[0] == "now allows * to kms:Decrypt"
    assert f"new outside account {OUTSIDE}" in phrases
    assert f"arn:aws:iam::{OUTSIDE}:root gains kms:Encrypt" in phrases
    assert not any(p.startswith("* ") for p in phrases)


def test_diff_ignores_sid_order_and_formatting() -> None:
    a = _allow({"AWS": [f"arn:aws:iam::{OWNER}:role/a", f"arn:aws:iam::{OWNER}:role/b"]},
               ["kms:Decrypt", "kms:Encrypt"], Sid="one")  # fmt: skip
    b = _allow({"AWS": [f"arn:aws:iam::{OWNER}:role/b", f"arn:aws:iam::{OWNER}:role/a"]},
               ["kms:Encrypt", "kms:Decrypt"], Sid="two")  # fmt: skip
    assert not diff(parse_policy(_policy(ADMIN, a)), parse_policy(_policy(b, ADMIN))).changed


def test_diff_of_a_condition_change_only() -> None:
    old = parse_policy(
        _policy(_allow("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-1"}}))
    )
    new = parse_policy(
        _policy(_allow("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-2"}}))
    )
    change = diff(old, new)
    assert change.changed and not change.widened
    assert change.phrases() == [
        "conditions or statement details changed, principals and actions did not"
    ]


def test_diff_reports_removed_access() -> None:
    old = parse_policy(_policy(ADMIN, _allow({"AWS": f"arn:aws:iam::{OWNER}:role/app"})))
    change = diff(old, parse_policy(_policy(ADMIN)))
    assert not change.widened
    assert change.phrases() == [f"arn:aws:iam::{OWNER}:role/app loses kms:Decrypt"]


def test_diff_without_an_earlier_policy_says_so() -> None:
    change = diff(None, parse_policy(_policy(ADMIN)))
    assert change.widened
    assert change.phrases(inside={OWNER}) == [
        "no earlier policy of this key is known to compare with"
    ]


def test_wildcard_under_conditions_is_named_as_such() -> None:
    old = parse_policy(_policy(ADMIN))
    new = parse_policy(
        _policy(ADMIN, _allow("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-1"}}))
    )
    assert diff(old, new).phrases() == ["* (under conditions) gains kms:Decrypt"]


@pytest.mark.parametrize(
    ("principal", "account"),
    [
        (OWNER, OWNER),
        (f"arn:aws:iam::{OWNER}:user/a", OWNER),
        (f"arn:aws-cn:iam::{OWNER}:root", OWNER),
        (f"arn:aws:sts::{OWNER}:assumed-role/r/s", OWNER),
        ("AIDAEXAMPLE", None),
        ("logs.amazonaws.com", None),
        ("*", None),
    ],
)
def test_account_of(principal: str, account: str | None) -> None:
    assert account_of(principal) == account
