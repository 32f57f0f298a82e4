"""Agreement with Panther's rule tests on the same CloudTrail records.

Panther's ``AWS.KMS.CustomerManagedKeyLoss`` fires on a successful DisableKey or
ScheduleKeyDeletion; keytrail's KMS.KeyDisabledOrScheduledForDeletion must fire exactly when it
does. ``AWS.CloudTrail.ResourceMadePublic`` asks whether a PutKeyPolicy made a key public:
keytrail must answer with a critical EXPOSURE finding from KMS.KeyPolicyChanged exactly then.
Each record is run alone (several share the eventID "1").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.detect.detectors import by_id
from analytics.lake import schema as s
from tests.detectors.helpers import SAMPLES, context, events_from_records, run

PANTHER_KMS = SAMPLES / "panther" / "cloudtrail_rule_tests_kms.jsonl"


def _rows(rule_id: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in PANTHER_KMS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["rule_id"] == rule_id]


def _tests(rule_id: str) -> list[Any]:
    return [pytest.param(r, id=r["test_name"]) for r in _rows(rule_id)]


def test_the_panther_copy_has_the_records_these_tests_rely_on() -> None:
    assert len(_tests("AWS.KMS.CustomerManagedKeyLoss")) == 5
    assert len(_tests("AWS.CloudTrail.ResourceMadePublic")) == 2


@pytest.mark.parametrize("case", _tests("AWS.KMS.CustomerManagedKeyLoss"))
def test_key_loss_agrees_with_panther(case: dict[str, Any]) -> None:
    detector = by_id("KMS.KeyDisabledOrScheduledForDeletion")
    findings = run(detector, context(events_from_records([case["log"]])))
    assert (findings.height > 0) is case["expected_result"]


@pytest.mark.parametrize("case", _tests("AWS.CloudTrail.ResourceMadePublic"))
def test_policy_made_public_agrees_with_panther(case: dict[str, Any]) -> None:
    detector = by_id("KMS.KeyPolicyChanged")
    findings = run(detector, context(events_from_records([case["log"]])))
    exposed = findings.filter(
        (findings[s.OBSERVED_PATTERN] == "EXPOSURE") & (findings[s.SEVERITY] == "critical")
    )
    assert (exposed.height > 0) is case["expected_result"]
    if not case["expected_result"]:
        assert findings.filter(findings[s.OBSERVED_PATTERN] == "EXPOSURE").height == 0


def test_key_loss_reason_quotes_the_pending_window() -> None:
    (case,) = [
        r
        for r in _rows("AWS.KMS.CustomerManagedKeyLoss")
        if r["test_name"] == "KMS Key Scheduled For Deletion"
    ]
    detector = by_id("KMS.KeyDisabledOrScheduledForDeletion")
    reason = run(detector, context(events_from_records([case["log"]]))).get_column(s.REASON).item()
    assert "in 30 days" in reason
    assert "Jan 1, 2019 12:00:00 AM" in reason
    assert "arn:aws:iam::123456789012:role/tester" in reason
