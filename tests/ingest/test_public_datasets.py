"""Records nobody on the team wrote: public CloudTrail samples shipped in data/samples/public."""

from __future__ import annotations

import json
from pathlib import Path

from analytics.ingest.cloudtrail import parse_document
from analytics.lake import schema as s
from tests import trail

PUBLIC = Path(__file__).resolve().parents[2] / "data" / "samples" / "public"


def _has_required_fields(record: dict[str, object]) -> bool:
    return bool(record.get("eventID")) and bool(record.get("eventTime"))


def test_every_stratus_red_team_record_parses() -> None:
    files = sorted((PUBLIC / "stratus-red-team").glob("*.json"))
    assert len(files) == 35
    records = [r for f in files for r in json.loads(f.read_text())]
    parsed = parse_document(trail.document(records), "stratus")
    assert parsed.bad_records == []
    assert parsed.events.num_rows == len(records) == 310
    assert parsed.events.column(s.ACTOR).null_count == 0


def test_panther_records_parse_unless_they_lack_event_id_or_time() -> None:
    lines = (PUBLIC / "panther-analysis" / "cloudtrail_rule_tests.jsonl").read_text().splitlines()
    records = [json.loads(line)["log"] for line in lines]
    parsed = parse_document(trail.document(records), "panther")
    incomplete = [i for i, r in enumerate(records) if not _has_required_fields(r)]
    reasons = {b.index: b.reason for b in parsed.bad_records}
    # Rule-test snippets that omit eventID/eventTime are refused on their own, as the lake
    # contract requires; two more carry values that are not CloudTrail at all ("redacted"
    # times, a resources entry that is a string) and are refused with that reason.
    assert set(incomplete) <= set(reasons)
    unexpected = {i: r for i, r in reasons.items() if i not in incomplete}
    assert len(unexpected) == 2, unexpected
    assert any("redacted" in r for r in unexpected.values())
    assert any("$.resources[0]" in r for r in unexpected.values())
    assert parsed.events.num_rows == len(records) - len(reasons)


def test_panther_kms_records_get_the_right_actor_and_key() -> None:
    lines = (
        (PUBLIC / "panther-analysis" / "cloudtrail_rule_tests_kms.jsonl").read_text().splitlines()
    )
    records = [json.loads(line)["log"] for line in lines]
    complete = [r for r in records if _has_required_fields(r)]
    parsed = parse_document(trail.document(complete), "panther-kms")
    assert parsed.bad_records == []
    rows = parsed.events.to_pylist()
    assert len(rows) == len(complete) == 9
    for record, row in zip(complete, rows, strict=True):
        identity = record["userIdentity"]
        issuer = identity.get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
        expected_actor = issuer if identity.get("type") == "AssumedRole" else identity.get("arn")
        assert row[s.ACTOR] == expected_actor, record["eventName"]
        resources = [r.get("ARN") or r.get("arn") for r in record.get("resources") or []]
        key_id = (record.get("requestParameters") or {}).get("keyId")
        if resources:
            assert row[s.KEY_ARN] == resources[0]
        elif key_id:
            region, account = record["awsRegion"], record["recipientAccountId"]
            assert row[s.KEY_ARN] == f"arn:aws:kms:{region}:{account}:key/{key_id}"
        else:  # nothing in the record names the key
            assert row[s.KEY_ARN] is None
