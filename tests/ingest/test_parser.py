"""The parser: bytes of a CloudTrail object → rows in the event schema, quirks normalised once."""

from __future__ import annotations

import datetime as dt
import gzip
from typing import Any

import orjson
import polars as pl
import pytest

from analytics.ingest.cloudtrail import (
    decode_document,
    normalise_objects,
    parse_document,
    parse_object,
)
from analytics.ingest.decompress import RejectedObject
from analytics.lake import schema as s
from tests import trail
from tests.trail import ACCOUNT, KEY_ARN, KEY_ID, REGION, ROLE_ARN, assumed_role, kms_record


def rows(*records: dict[str, Any]) -> list[dict[str, Any]]:
    parsed = parse_document(trail.document(list(records)), "test-object")
    assert not parsed.bad_records, parsed.bad_records
    return parsed.events.to_pylist()


def one(record: dict[str, Any]) -> dict[str, Any]:
    (row,) = rows(record)
    return row


def test_output_has_exactly_the_event_schema() -> None:
    parsed = parse_document(trail.document([kms_record()]), "obj")
    assert parsed.events.schema == s.EVENT_SCHEMA


def test_gzip_and_plain_json_are_sniffed_not_trusted_by_name() -> None:
    records = [kms_record()]
    assert parse_object(trail.gz(records), "a.json").events.num_rows == 1
    assert parse_object(trail.document(records), "a.json.gz").events.num_rows == 1


def test_multi_member_gzip_is_read_whole() -> None:
    first = gzip.compress(b'{"Records": [')
    second = gzip.compress(orjson.dumps(kms_record()) + b"]}")
    assert parse_object(first + second, "x").events.num_rows == 1


def test_assumed_role_actor_is_the_role_not_the_session() -> None:
    row = one(kms_record(identity=assumed_role(session="build-4711")))
    assert row[s.ACTOR] == ROLE_ARN
    assert row[s.PRINCIPAL_ARN] == f"arn:aws:sts::{ACCOUNT}:assumed-role/payments/build-4711"
    assert row[s.SESSION_NAME] == "build-4711"
    assert row[s.PRINCIPAL_TYPE] == "AssumedRole"


def test_assumed_role_without_session_issuer_falls_back_to_the_role_arn() -> None:
    identity = assumed_role()
    del identity["sessionContext"]
    assert one(kms_record(identity=identity))[s.ACTOR] == f"arn:aws:iam::{ACCOUNT}:role/payments"


@pytest.mark.parametrize(
    ("identity", "actor"),
    [
        (
            {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "accountId": ACCOUNT},
            f"arn:aws:iam::{ACCOUNT}:user/alice",
        ),
        ({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT},
         f"root:{ACCOUNT}"),
        ({"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/x", "accountId": ACCOUNT},
         f"arn:aws:iam::{ACCOUNT}:role/x"),
        ({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
         "service:cloudtrail.amazonaws.com"),
        ({"type": "AWSAccount", "accountId": "999988887777", "principalId": "AIDAX"},
         "account:999988887777"),
        (
            {
                "type": "FederatedUser",
                "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/bob",
                "accountId": ACCOUNT,
                "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:user/fed"}},
            },
            f"arn:aws:iam::{ACCOUNT}:user/fed",
        ),
        (
            {"type": "WebIdentityUser", "principalId": "accounts.google.com:123",
             "userName": "123", "identityProvider": "accounts.google.com"},
            "web-identity:accounts.google.com/123",
        ),
        (
            {"type": "IdentityCenterUser", "accountId": ACCOUNT,
             "onBehalfOf": {"userId": "906736ed-1234", "identityStoreArn": "arn:aws:identitystore::1:identitystore/d-1"}},
            "identity-center:906736ed-1234",
        ),
        ({"type": "Unknown", "principalId": "AIDAQ", "accountId": ACCOUNT, "userName": "ext"},
         f"unknown:{ACCOUNT}/ext"),
        ({"accountId": ACCOUNT, "invokedBy": "AWS Internal"}, "service:kms.amazonaws.com"),
    ],
)  # fmt: skip
def test_every_identity_type_gets_a_stable_actor(identity: dict[str, Any], actor: str) -> None:
    assert one(kms_record(identity=identity))[s.ACTOR] == actor


def test_service_acting_for_a_caller_keeps_the_caller_as_actor() -> None:
    record = kms_record(
        identity=assumed_role(invoked_by="s3.amazonaws.com"),
        source_ip="s3.amazonaws.com",
        userAgent="s3.amazonaws.com",
    )
    row = one(record)
    assert row[s.ACTOR] == ROLE_ARN
    assert row[s.INVOKED_BY] == "s3.amazonaws.com"
    assert row[s.SOURCE_IP] is None
    assert row[s.SOURCE_SERVICE] == "s3.amazonaws.com"


@pytest.mark.parametrize(
    ("value", "ip", "service"),
    [
        ("203.0.113.9", "203.0.113.9", None),
        ("2001:db8::1", "2001:db8::1", None),
        ("AWS Internal", None, "AWS Internal"),
        ("secretsmanager.amazonaws.com", None, "secretsmanager.amazonaws.com"),
        ("999.1.1.1", None, "999.1.1.1"),
    ],
)
def test_source_ip_keeps_only_real_addresses(
    value: str, ip: str | None, service: str | None
) -> None:
    row = one(kms_record(source_ip=value))
    assert (row[s.SOURCE_IP], row[s.SOURCE_SERVICE]) == (ip, service)


def test_key_arn_prefers_resources() -> None:
    row = one(kms_record(request={"keyId": "alias/other"}))
    assert row[s.KEY_ARN] == KEY_ARN
    assert row[s.KEY_ACCOUNT_ID] == ACCOUNT


def test_key_arn_from_response_elements_when_resources_are_missing() -> None:
    record = kms_record("CreateKey", key_arn=None, request={"origin": "AWS_KMS"})
    record["responseElements"] = {"keyMetadata": {}, "keyId": KEY_ARN}
    assert one(record)[s.KEY_ARN] == KEY_ARN


@pytest.mark.parametrize("spelling", [b'"k\\u0065yId"', b'"\\u006beyId"'])
def test_key_arn_from_response_elements_whose_key_name_is_spelled_with_escapes(
    spelling: bytes,
) -> None:
    """The response's JSON is parsed only where its text could hold a keyId: a name spelled
    with escapes still counts."""
    record = kms_record("CreateKey", key_arn=None, request={"origin": "AWS_KMS"})
    record["responseElements"] = {"keyMetadata": {}, "keyIdPlaceholder": KEY_ARN}
    doc = trail.document([record]).replace(b'"keyIdPlaceholder"', spelling)
    assert b"keyId" not in doc.split(b"responseElements")[1].split(b"}")[0]
    parsed = parse_document(doc, "obj")
    assert parsed.events.column(s.KEY_ARN).to_pylist() == [KEY_ARN]


@pytest.mark.parametrize(
    ("key_id", "expected"),
    [
        (KEY_ID, KEY_ARN),
        (KEY_ARN, KEY_ARN),
        ("alias/app", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app"),
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/app"),
    ],
)
def test_key_arn_from_request_key_id(key_id: str, expected: str) -> None:
    row = one(kms_record("DescribeKey", key_arn=None, request={"keyId": key_id}))
    assert row[s.KEY_ARN] == expected


def test_key_arn_partition_follows_the_region() -> None:
    record = kms_record(
        "DescribeKey", key_arn=None, request={"keyId": KEY_ID}, awsRegion="cn-north-1"
    )
    assert one(record)[s.KEY_ARN] == f"arn:aws-cn:kms:cn-north-1:{ACCOUNT}:key/{KEY_ID}"


def test_symmetric_decrypt_without_key_id_or_resources_has_no_key() -> None:
    assert one(kms_record(key_arn=None, request={"encryptionContext": {}}))[s.KEY_ARN] is None


def test_request_key_id_of_other_services_is_not_a_kms_key() -> None:
    record = kms_record(
        "PutObject", key_arn=None, request={"keyId": "abc"}, eventSource="s3.amazonaws.com"
    )
    assert one(record)[s.KEY_ARN] is None


def test_json_fields_are_kept_verbatim_and_encryption_context_extracted() -> None:
    request = {"encryptionContext": {"aws:s3:arn": "arn:aws:s3:::b/o"}, "keyId": KEY_ID}
    row = one(kms_record(request=request))
    assert orjson.loads(row[s.REQUEST_PARAMETERS]) == request
    assert orjson.loads(row[s.ENCRYPTION_CONTEXT]) == {"aws:s3:arn": "arn:aws:s3:::b/o"}
    assert row[s.RESPONSE_ELEMENTS] is None


@pytest.mark.parametrize("version", ["1.0", "1.02", "1.05", "1.08", "1.09", "1.10", "1.11"])
def test_every_event_version_parses(version: str) -> None:
    assert one(kms_record(eventVersion=version))[s.EVENT_VERSION] == version


def test_missing_and_null_fields_become_nulls() -> None:
    record = {"eventID": "e-1", "eventTime": "2026-11-02T10:00:00Z", "userIdentity": None,
              "eventSource": None, "readOnly": None, "resources": None, "requestParameters": None}  # fmt: skip
    row = one(record)
    assert row[s.EVENT_ID] == "e-1"
    assert row[s.ACTOR] is None and row[s.KEY_ARN] is None and row[s.READ_ONLY] is None


def test_read_only_given_as_a_string_is_still_a_boolean() -> None:
    assert one(kms_record(readOnly="false"))[s.READ_ONLY] is False


def test_event_time_is_utc_and_partition_date_is_the_events_own_date() -> None:
    row = one(kms_record(when="2026-11-02T23:59:59Z"))
    assert row[s.EVENT_TIME] == dt.datetime(2026, 11, 2, 23, 59, 59, tzinfo=dt.UTC)
    assert row[s.EVENT_DATE] == dt.date(2026, 11, 2)


def test_record_without_event_id_or_time_is_set_aside_alone() -> None:
    good = kms_record(seed="good")
    no_id = kms_record(seed="x")
    del no_id["eventID"]
    no_time = kms_record(seed="y")
    del no_time["eventTime"]
    parsed = parse_document(trail.document([no_id, good, no_time]), "obj")
    assert [r[s.EVENT_ID] for r in parsed.events.to_pylist()] == [good["eventID"]]
    assert [(b.index, b.reason) for b in parsed.bad_records] == [
        (0, "record has no eventID"),
        (2, "record has no eventTime"),
    ]
    assert orjson.loads(parsed.bad_records[1].raw)["eventID"] == no_time["eventID"]


def test_record_of_the_wrong_shape_is_set_aside_alone() -> None:
    good = kms_record(seed="good")
    doc = b'{"Records": [' + orjson.dumps(good) + b', "not a record", {"eventID": 5}]}'
    parsed = parse_document(doc, "obj")
    assert parsed.events.num_rows == 1
    assert [b.index for b in parsed.bad_records] == [1, 2]


def test_invalid_utf8_is_replaced_and_the_record_kept() -> None:
    doc = trail.document([kms_record(userAgent="PLACEHOLDER")]).replace(
        b"PLACEHOLDER", b"ab\xff\xfe"
    )
    parsed = parse_document(doc, "obj")
    assert parsed.events.num_rows == 1
    assert parsed.events.column(s.USER_AGENT)[0].as_py() == "ab\ufffd\ufffd"
    assert parsed.notes == ["invalid UTF-8 replaced with U+FFFD"]


@pytest.mark.parametrize("field", ["encryptionContext", "other"])
def test_invalid_utf8_inside_a_json_field_is_repaired_in_that_object_only(field: str) -> None:
    request = {"keyId": KEY_ID, "encryptionContext": {"k": "v"}, "other": "v"}
    request[field] = {"k": "PLACEHOLDER"} if field == "encryptionContext" else "PLACEHOLDER"
    bad = trail.document([kms_record(request=request)]).replace(b"PLACEHOLDER", b"ab\xff")
    good = trail.document([kms_record(seed="good", request={"keyId": KEY_ID})])
    decoded = [decode_document(good, "good"), decode_document(bad, "bad")]
    table = normalise_objects(decoded)
    assert table.num_rows == 2
    by_object = {r[s.SOURCE_OBJECT]: r for r in table.to_pylist()}
    assert "ab\ufffd" in by_object["bad"][s.REQUEST_PARAMETERS]
    assert by_object["bad"][s.KEY_ARN] == KEY_ARN
    assert [d.notes for d in decoded] == [[], ["invalid UTF-8 replaced with U+FFFD"]]


def test_kms_parameters_of_an_odd_shape_cost_only_that_record_its_key_id() -> None:
    odd = kms_record(seed="odd", key_arn=None, request={"keyId": 42, "encryptionContext": {}})
    text = kms_record(seed="text", key_arn=None)
    text["requestParameters"] = "not an object"
    fine = kms_record(seed="fine", key_arn=None, request={"keyId": KEY_ID, "encryptionContext": []})
    got = {r[s.EVENT_ID]: r for r in rows(odd, text, fine)}
    assert got[odd["eventID"]][s.KEY_ARN] is None
    assert got[text["eventID"]][s.REQUEST_PARAMETERS] == '"not an object"'
    assert got[fine["eventID"]][s.KEY_ARN] == KEY_ARN
    assert got[fine["eventID"]][s.ENCRYPTION_CONTEXT] is None  # a list is not a context


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty object (0 bytes)"),
        (b"PK\x03\x04zip", "not gzip or JSON (first bytes 50 4b 03 04)"),
        (gzip.compress(b'{"Records": []}')[:-12], "truncated gzip"),
        (gzip.compress(b'{"Records": [{"eventID": '), "invalid JSON"),
        (gzip.compress(b'{"awsAccountId": "1", "logFiles": []}'), "JSON has no Records array"),
        (gzip.compress(b"[1, 2]"), "JSON top level is list"),
    ],
    # gzip headers carry a timestamp: name the cases so every xdist worker collects the same ids
    ids=["empty", "zip", "truncated-gzip", "invalid-json", "no-records", "top-level-list"],
)
def test_unusable_objects_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RejectedObject, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_object(data, "obj")


def test_decompression_is_bounded() -> None:
    bomb = gzip.compress(b'{"Records": [' + b" " * 5_000_000 + b"]}")
    with pytest.raises(RejectedObject, match="more than the 1,000,000-byte bound"):
        parse_object(bomb, "obj", max_bytes=1_000_000)


def test_hostile_strings_are_data_not_code() -> None:
    hostile = {
        "userAgent": "<script>alert(1)</script>\n\"quoted\" 'x'",
        "requestParameters": {"encryptionContext": {"q": "'; DROP TABLE events; --"}},
        "errorMessage": "x" * 10_000,
    }
    row = one(kms_record(**hostile))
    assert row[s.USER_AGENT] == hostile["userAgent"]
    assert orjson.loads(row[s.ENCRYPTION_CONTEXT]) == {"q": "'; DROP TABLE events; --"}
    assert len(row[s.ERROR_MESSAGE]) == 10_000


def test_columns_come_out_as_polars_friendly_arrow() -> None:
    parsed = parse_document(trail.document([kms_record()]), "obj")
    frame = pl.from_arrow(parsed.events)
    assert isinstance(frame, pl.DataFrame)
    assert frame.schema[s.EVENT_TIME] == pl.Datetime("us", "UTC")
