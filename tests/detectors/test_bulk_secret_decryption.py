"""KMS.BulkSecretDecryption beyond its stored samples: windows, warm-up, people, settings,
the narrow day view it relies on, and what its reason shows."""

from __future__ import annotations

from typing import Any

from analytics.detect.detectors import by_id
from analytics.detect.detectors._common import rule_events
from analytics.lake import schema as s
from tests.detectors.helpers import (
    OWNER,
    context,
    events_from_records,
    key_arn,
    record,
    role_identity,
    run,
)

DETECTOR = by_id("KMS.BulkSecretDecryption")
KEY = key_arn()
SECRETS = "secretsmanager.amazonaws.com"


def _secret_read(
    when: str, name: str, who: dict[str, Any], *, via: str = SECRETS
) -> dict[str, Any]:
    arn = f"arn:aws:secretsmanager:us-east-1:{OWNER}:secret:{name}-Ab12Cd"
    rec = record(
        "Decrypt",
        when,
        who={**who, "invokedBy": via},
        key=KEY,
        request={"encryptionContext": {"SecretARN": arn, "SecretVersionId": "v1"}},
    )
    return {**rec, "sourceIPAddress": via, "userAgent": via}


def _user(name: str = "casey") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::{OWNER}:user/{name}",
        "accountId": OWNER,
        "userName": name,
    }


def _burst(who: dict[str, Any], count: int, hour: int = 14, step_seconds: int = 5) -> list[Any]:
    return [
        _secret_read(
            f"2026-11-28T{hour:02d}:{i * step_seconds // 60:02d}:{i * step_seconds % 60:02d}Z",
            f"prod/secret-{i:03d}",
            who,
        )
        for i in range(count)
    ]


def test_a_person_fires_on_a_fresh_lake_with_one_day_of_history() -> None:
    day = events_from_records(_burst(_user(), 25))
    findings = run(DETECTOR, context(day, history_days=1))
    assert findings.select(s.SEVERITY, s.OBSERVED_PATTERN).rows() == [("high", "SURGE")]
    assert "(a person)" in findings.get_column(s.REASON).item()


def test_a_workload_without_history_is_not_judged_before_the_warm_up() -> None:
    day = events_from_records(_burst(role_identity("new-service"), 25))
    assert run(DETECTOR, context(day, history_days=1)).height == 0


def test_a_workload_without_any_secret_reads_in_a_full_history_fires_medium() -> None:
    day = events_from_records(_burst(role_identity("batch-role"), 25))
    findings = run(DETECTOR, context(day, history_days=30))
    assert findings.get_column(s.SEVERITY).to_list() == ["medium"]
    assert "no secret or parameter decrypted" in findings.get_column(s.BASELINE).item()


def test_a_role_assumed_with_an_email_session_name_is_a_person() -> None:
    who = role_identity("platform-admin", session="sam.lee@example.com")
    day = events_from_records(_burst(who, 22))
    findings = run(DETECTOR, context(day, history_days=1))
    assert findings.get_column(s.SEVERITY).to_list() == ["high"]


def test_a_burst_across_a_quarter_hour_boundary_is_one_window() -> None:
    # 11 secrets just before 14:15 and 11 just after: tumbling buckets would see 11 and 11.
    who = _user()
    day = events_from_records(
        [_secret_read(f"2026-11-28T14:14:{10 + 4 * i:02d}Z", f"a/{i}", who) for i in range(11)]
        + [_secret_read(f"2026-11-28T14:15:{10 + 4 * i:02d}Z", f"b/{i}", who) for i in range(11)]
    )
    findings = run(DETECTOR, context(day, history_days=1))
    assert findings.get_column("evidence_count").to_list() == [22]


def test_secrets_read_slowly_through_the_day_do_not_fire() -> None:
    # 40 secrets, one every 20 minutes: never more than one in any 15-minute window.
    who = _user()
    day = events_from_records(
        [
            _secret_read(f"2026-11-28T{8 + i // 3:02d}:{20 * (i % 3):02d}:00Z", f"s/{i}", who)
            for i in range(40)
        ]
    )
    assert run(DETECTOR, context(day, history_days=1)).height == 0


def test_window_and_thresholds_come_from_settings() -> None:
    day = events_from_records(_burst(_user(), 8, step_seconds=60))  # 8 secrets in 8 minutes
    quiet = run(DETECTOR, context(day, history_days=1))
    loud = run(
        DETECTOR,
        context(
            day,
            history_days=1,
            settings={"person_min_distinct": 8, "min_distinct": 5, "window_minutes": 10},
        ),
    )
    narrow = run(
        DETECTOR,
        context(
            day,
            history_days=1,
            settings={"person_min_distinct": 8, "min_distinct": 5, "window_minutes": 5},
        ),
    )
    assert (quiet.height, loud.height, narrow.height) == (0, 1, 0)


def test_the_actors_own_history_raises_the_bar() -> None:
    who = role_identity("config-loader")
    history = events_from_records(
        [
            _secret_read(f"2026-11-2{d}T06:00:{i:02d}Z", f"cfg/{i}", who)
            for d in range(1, 8)
            for i in range(12)
        ]
    )
    usual = events_from_records(_burst(who, 30))  # 30 is not more than 3 × 12
    more = events_from_records(_burst(who, 40))  # 40 is
    assert run(DETECTOR, context(usual, history)).height == 0
    finding = run(DETECTOR, context(more, history))
    assert "at most 12 distinct" in finding.get_column(s.BASELINE).item()


def test_cross_account_copies_of_one_call_count_once() -> None:
    reads = _burst(_user(), 12)
    copies = [{**r, "eventID": f"{r['eventID']}-copy", "recipientAccountId": "444455556666"}
              for r in reads]  # fmt: skip
    day = events_from_records(reads + copies)
    findings = run(DETECTOR, context(day, history_days=1, settings={"person_min_distinct": 12}))
    assert "decrypted 12 distinct" in findings.get_column(s.REASON).item()
    assert findings.get_column(s.EVIDENCE_COUNT).item() == 24


def test_the_reason_names_three_secrets_and_counts_the_rest() -> None:
    findings = run(DETECTOR, context(events_from_records(_burst(_user(), 30)), history_days=1))
    reason = findings.get_column(s.REASON).item()
    assert (
        "30 Secrets Manager secret(s) (prod/secret-000-Ab12Cd, prod/secret-001-Ab12Cd, " in reason
    )
    assert "and 27 more)" in reason
    assert "via secretsmanager.amazonaws.com" in reason


def test_parameters_are_counted_apart_from_secrets() -> None:
    who = {**_user(), "invokedBy": "AWS Internal"}
    params = [
        record(
            "Decrypt",
            f"2026-11-28T14:05:{i:02d}Z",
            who=who,
            key=KEY,
            request={"encryptionContext": {
                "PARAMETER_ARN": f"arn:aws:ssm:us-east-1:{OWNER}:parameter/prod/p{i}"}},
        )
        for i in range(10)
    ]  # fmt: skip
    day = events_from_records(_burst(_user(), 12) + params)
    reason = run(DETECTOR, context(day, history_days=1)).get_column(s.REASON).item()
    assert "12 Secrets Manager secret(s)" in reason and "10 SSM parameter(s) (/prod/p0" in reason


def test_the_day_view_keeps_encryption_contexts_only_of_secret_decrypts() -> None:
    secret = _secret_read("2026-11-28T14:00:00Z", "prod/db", _user())
    s3 = record(
        "Decrypt",
        "2026-11-28T14:00:01Z",
        key=KEY,
        request={"encryptionContext": {"aws:s3:arn": "arn:aws:s3:::bucket/object"}},
    )
    view = rule_events(events_from_records([secret, s3]).lazy()).collect()
    contexts = dict(zip(view[s.EVENT_ID], view[s.ENCRYPTION_CONTEXT], strict=True))
    assert contexts[secret["eventID"]] is not None
    assert contexts[s3["eventID"]] is None
