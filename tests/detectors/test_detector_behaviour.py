"""Behaviour the stored samples do not pin down: sequences within a day, warm-up, settings,
baselines and evidence."""

from __future__ import annotations

import json

import polars as pl
import pytest

from analytics.detect.detectors import by_id
from analytics.lake import schema as s
from tests.detectors.helpers import (
    OUTSIDER,
    OWNER,
    SISTER,
    context,
    events_from_records,
    key_arn,
    record,
    role_identity,
    run,
)

KEY = key_arn()


def _policy_event(when: str, *statements: dict[str, object]) -> dict[str, object]:
    text = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return record("PutKeyPolicy", when, key=KEY, request={"keyId": KEY, "policy": text})


ADMIN = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OWNER}:root"}, "Action": "kms:*"}
PUBLIC = {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"}
ORG_ONLY = {**PUBLIC, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}}


def test_policy_changes_of_one_day_are_diffed_in_sequence() -> None:
    day = events_from_records(
        [
            _policy_event("2026-11-28T09:00:00Z", ADMIN, PUBLIC),
            _policy_event("2026-11-28T09:30:00Z", ADMIN),
            _policy_event("2026-11-28T10:00:00Z", ADMIN),  # re-applied: no finding
        ]
    )
    history = events_from_records([_policy_event("2026-11-20T09:00:00Z", ADMIN)])
    findings = run(by_id("KMS.KeyPolicyChanged"), context(day, history))
    assert findings.get_column(s.SEVERITY).to_list() == ["critical", "low"]
    reasons = findings.get_column(s.REASON).to_list()
    assert "now allows * to kms:Decrypt" in reasons[0]
    assert "no longer allows * to kms:Decrypt" in reasons[1]


def test_org_restricted_wildcard_is_a_change_not_an_exposure() -> None:
    day = events_from_records([_policy_event("2026-11-28T09:00:00Z", ADMIN, ORG_ONLY)])
    history = events_from_records([_policy_event("2026-11-20T09:00:00Z", ADMIN)])
    findings = run(by_id("KMS.KeyPolicyChanged"), context(day, history))
    assert findings.select(s.SEVERITY, s.OBSERVED_PATTERN).rows() == [("medium", "CHANGE")]
    assert "* (under conditions) gains kms:Decrypt" in findings.get_column(s.REASON).item()


def test_partner_account_already_in_the_policy_is_not_new() -> None:
    partner = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OUTSIDER}:root"},
               "Action": "kms:Decrypt"}  # fmt: skip
    tightened = {**partner, "Condition": {"StringEquals": {"kms:ViaService": "s3.amazonaws.com"}}}
    day = events_from_records([_policy_event("2026-11-28T09:00:00Z", ADMIN, tightened)])
    history = events_from_records([_policy_event("2026-11-20T09:00:00Z", ADMIN, partner)])
    findings = run(by_id("KMS.KeyPolicyChanged"), context(day, history))
    assert findings.select(s.SEVERITY, s.OBSERVED_PATTERN).rows() == [("low", "CHANGE")]


def _cross_account_decrypt(when: str, account: str) -> dict[str, object]:
    return record("Decrypt", when, who=role_identity("reader", account), key=KEY)


def test_cross_account_rule_is_silent_during_warm_up() -> None:
    day = events_from_records([_cross_account_decrypt("2026-11-28T01:00:00Z", OUTSIDER)])
    detector = by_id("KMS.NewCrossAccountCaller")
    assert run(detector, context(day, history_days=3)).height == 0
    assert run(detector, context(day, history_days=3, settings={"warmup_days": 2})).height == 1


def test_cross_account_rule_groups_the_day_per_pair() -> None:
    day = events_from_records(
        [_cross_account_decrypt(f"2026-11-28T{h:02d}:00:00Z", OUTSIDER) for h in (1, 5, 9)]
    )
    findings = run(by_id("KMS.NewCrossAccountCaller"), context(day))
    row = findings.row(0, named=True)
    assert findings.height == 1 and row[s.EVIDENCE_COUNT] == 3
    assert (row[s.WINDOW_START].hour, row[s.WINDOW_END].hour) == (1, 9)


def test_new_actor_rule_needs_fourteen_days_by_default() -> None:
    day = events_from_records([record("Decrypt", "2026-11-28T01:00:00Z", key=KEY)])
    detector = by_id("KMS.NewActorForKey")
    assert run(detector, context(day, history_days=13)).height == 0
    assert run(detector, context(day, history_days=14)).height == 1


def test_new_actor_from_outside_account_is_medium() -> None:
    day = events_from_records([_cross_account_decrypt("2026-11-28T01:00:00Z", OUTSIDER)])
    findings = run(by_id("KMS.NewActorForKey"), context(day))
    assert findings.get_column(s.SEVERITY).to_list() == ["medium"]
    assert "outside the organisation" in findings.get_column(s.REASON).item()


def _failures(
    actor: str, hour: int, count: int, keys: int = 1, day: str = "28"
) -> list[dict[str, object]]:
    return [
        record(
            "Decrypt", f"2026-11-{day}T{hour:02d}:{i % 60:02d}:00Z",
            who=role_identity(actor), key=key_arn(f"{i % keys:08d}-0000-0000-0000-000000000000"),
            error="AccessDenied",
        )
        for i in range(count)
    ]  # fmt: skip


def test_failed_decrypt_thresholds_come_from_settings() -> None:
    day = events_from_records(_failures("prober", 13, 12, keys=3))
    detector = by_id("KMS.FailedDecryptBurst")
    assert run(detector, context(day)).height == 0
    fired = run(detector, context(day, settings={"min_failures": 10, "min_keys": 3}))
    assert fired.height == 1
    reason = fired.get_column(s.REASON).item()
    assert reason.startswith(
        "arn:aws:iam::111122223333:role/prober had 12 failed decrypt-family calls across 3 key(s)"
    )
    assert "13:00–14:00 UTC" in reason


def test_failed_decrypt_baseline_is_the_actors_own() -> None:
    history = events_from_records(
        [r for d in ("20", "21", "22") for r in _failures("batch", 4, 30, day=d)]
    )
    detector = by_id("KMS.FailedDecryptBurst")
    usual = events_from_records(_failures("batch", 4, 250))
    assert run(detector, context(usual, history)).height == 0
    burst = events_from_records(_failures("batch", 4, 301))
    findings = run(detector, context(burst, history))
    assert findings.height == 1
    assert "usually at most 30 an hour" in findings.get_column(s.BASELINE).item()
    assert findings.get_column(s.SCORE).item() > 10


def test_pending_key_use_after_cancel_is_not_reported() -> None:
    day = events_from_records(
        [
            record("ScheduleKeyDeletion", "2026-11-28T08:00:00Z", key=KEY,
                   request={"keyId": KEY, "pendingWindowInDays": 7}),
            record("Decrypt", "2026-11-28T09:00:00Z", key=KEY, error="KMSInvalidStateException"),
            record("CancelKeyDeletion", "2026-11-28T10:00:00Z", key=KEY),
            record("Decrypt", "2026-11-28T11:00:00Z", key=KEY, error="DisabledException"),
        ]
    )  # fmt: skip
    findings = run(by_id("KMS.PendingDeletionKeyUsed"), context(day))
    assert findings.height == 1
    assert findings.get_column(s.WINDOW_START).dt.hour().item() == 9


def test_pending_key_use_is_grouped_per_actor_and_hour() -> None:
    refused = f"{KEY} is pending deletion."
    day = events_from_records(
        [record("Decrypt", f"2026-11-28T13:{m:02d}:00Z", key=KEY,
                error="KMSInvalidStateException", message=refused) for m in range(5)]
        + [record("Encrypt", "2026-11-28T14:01:00Z", key=KEY,
                  error="KMSInvalidStateException", message=refused)]
    )  # fmt: skip
    findings = run(by_id("KMS.PendingDeletionKeyUsed"), context(day))
    assert findings.get_column(s.EVIDENCE_COUNT).to_list() == [5, 1]


def test_alias_evidence_includes_the_delete_that_detached_the_old_key() -> None:
    alias = "alias/payments"
    day = events_from_records(
        [
            record("DeleteAlias", "2026-11-28T09:00:00Z", key=key_arn("old-key"),
                   request={"aliasName": alias}),
            record("CreateAlias", "2026-11-28T09:00:05Z", key=key_arn("new-key"),
                   request={"aliasName": alias, "targetKeyId": "new-key"}),
        ]
    )  # fmt: skip
    findings = run(by_id("KMS.AliasRetargeted"), context(day))
    assert findings.get_column(s.EVIDENCE_EVENT_IDS).item().len() == 2
    assert "from key old-key to key new-key" in findings.get_column(s.REASON).item()


def test_rotation_working_hours_come_from_settings() -> None:
    day = events_from_records([record("DisableKeyRotation", "2026-11-28T08:30:00Z", key=KEY)])
    detector = by_id("KMS.RotationDisabled")
    assert run(detector, context(day)).get_column(s.SEVERITY).item() == "medium"
    late_start = {"workday_start_hour": 9}
    assert run(detector, context(day, settings=late_start)).get_column(s.SEVERITY).item() == "high"


def test_deletion_of_a_multi_region_primary_says_replicas_go_first() -> None:
    day = events_from_records(
        [record("ScheduleKeyDeletion", "2026-11-28T08:00:00Z", key=KEY,
                request={"keyId": KEY, "pendingWindowInDays": 30},
                response={"keyId": KEY, "keyState": "PendingReplicaDeletion"})]
    )  # fmt: skip
    reason = run(by_id("KMS.KeyDisabledOrScheduledForDeletion"), context(day))[s.REASON].item()
    assert "replicas are deleted first" in reason


def test_grant_to_sister_account_is_outside_when_no_organisation_is_configured() -> None:
    grant = record("CreateGrant", "2026-11-28T08:00:00Z", key=KEY,
                   request={"keyId": KEY, "operations": ["Decrypt"],
                            "granteePrincipal": f"arn:aws:iam::{SISTER}:role/reader"})  # fmt: skip
    day = events_from_records([grant])
    detector = by_id("KMS.GrantToExternalPrincipal")
    assert run(detector, context(day)).height == 0
    assert run(detector, context(day, org_accounts=frozenset())).height == 1


def test_root_usage_is_one_finding_per_hour() -> None:
    root = {"type": "Root", "arn": f"arn:aws:iam::{OWNER}:root", "accountId": OWNER}
    day = events_from_records(
        [record("Decrypt", f"2026-11-28T{h:02d}:10:00Z", who=root, key=KEY) for h in (3, 3, 4)]
    )
    findings = run(by_id("KMS.RootKmsUsage"), context(day))
    assert findings.get_column(s.EVIDENCE_COUNT).to_list() == [2, 1]
    assert findings.get_column(s.ACTOR).unique().to_list() == [f"root:{OWNER}"]


def test_findings_windows_are_utc() -> None:
    day = events_from_records([record("DisableKey", "2026-11-28T08:00:00Z", key=KEY)])
    findings = run(by_id("KMS.KeyDisabledOrScheduledForDeletion"), context(day))
    assert findings.schema[s.WINDOW_START] == pl.Datetime("us", "UTC")


def test_calls_after_the_key_is_deleted_are_not_pending_deletion_use() -> None:
    history = events_from_records(
        [record("ScheduleKeyDeletion", "2026-10-30T08:00:00Z", key=KEY,
                request={"keyId": KEY, "pendingWindowInDays": 7})]
    )  # fmt: skip
    deleted = record("DeleteKey", "2026-11-28T08:00:00Z", key=KEY, request=None)
    deleted["userIdentity"] = {"accountId": OWNER, "invokedBy": "AWS Internal"}
    deleted["eventType"] = "AwsServiceEvent"
    before = record("Decrypt", "2026-11-28T07:00:00Z", key=KEY, error="KMSInvalidStateException")
    after = record("Decrypt", "2026-11-28T09:00:00Z", key=KEY, error="NotFoundException")
    findings = run(
        by_id("KMS.PendingDeletionKeyUsed"),
        context(events_from_records([before, deleted, after]), history),
    )
    assert findings.get_column(s.EVIDENCE_EVENT_IDS).explode().to_list() == [before["eventID"]]


def test_a_malformed_setting_names_itself() -> None:
    day = events_from_records(_failures("prober", 13, 1))
    with pytest.raises(ValueError, match="min_failures='lots'"):
        run(by_id("KMS.FailedDecryptBurst"), context(day, settings={"min_failures": "lots"}))
