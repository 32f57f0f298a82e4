"""The report builders, one behaviour each, on records written for the case."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from analytics.adapters.kms_inventory import KeySnapshot
from analytics.lake import schema as s
from analytics.publish.reports import key_usage, policy_audit, rotation
from analytics.publish.reports import schemas as r
from analytics.publish.reports.daily import build
from analytics.publish.reports.keyfacts import traits_from, walk
from tests.publish import fixture as f
from tests.publish.conftest import BuiltReport
from tests.publish.helpers import inputs_from_records

DAY = dt.date(2026, 11, 20)


def _rotation(
    records: list[dict[str, Any]], snapshots: tuple[KeySnapshot, ...] = ()
) -> dict[str, dict[str, Any]]:
    inputs = inputs_from_records(records, DAY)
    history = walk(inputs.management_events, DAY, traits_from(inputs.key_activity))
    frame = rotation.build(history, DAY, snapshots)
    return {row[s.KEY_ARN]: row for row in frame.iter_rows(named=True)}


def _at(day: dt.date, hour: int = 10, minute: int = 0) -> str:
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00Z"


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_period_from_enable_key_rotation_sets_the_due_date() -> None:
    rows = _rotation([
        f.call("EnableKeyRotation", _at(dt.date(2026, 11, 1)), "en", f.ADMIN, f.K_PAY,
               {"keyId": "x", "rotationPeriodInDays": 120}),
    ])  # fmt: skip
    row = rows[f.K_PAY]
    assert (row[r.ROTATION_STATUS], row["rotation_period_days"]) == ("ENABLED", 120)
    assert row[r.NEXT_ROTATION_DUE] == dt.date(2027, 3, 1)
    assert row[r.OVERDUE] is False


def test_rotation_reads_both_rotate_key_forms_and_on_demand_calls() -> None:
    old_form = f._service_event(
        "RotateKey",
        _at(dt.date(2026, 11, 10)),
        "r21",
        None,
        {"keyId": "3333cccc-33cc-44dd-88ee-3333cccc3333"},
    )
    new_form = f._service_event(
        "RotateKey",
        _at(dt.date(2026, 11, 12)),
        "r25",
        f.K_OND,
        {
            "rotationType": "AUTOMATIC",
            "keyOrigin": "AWS_KMS",
            "previousKeyMaterialId": "a",
            "currentKeyMaterialId": "b",
        },
    )
    on_demand = f.call(
        "RotateKeyOnDemand",
        _at(dt.date(2026, 11, 15)),
        "od",
        f.ADMIN,
        f.K_OND,
        {"keyId": "8888bbbb-88bb-4422-8833-8888bbbb8888"},
    )
    rows = _rotation([old_form, new_form, on_demand])  # fmt: skip
    old, new = rows[f.K_OLD], rows[f.K_OND]
    assert (old["last_rotation_type"], old["automatic_rotations_seen"]) == ("AUTOMATIC", 1)
    assert old[r.ROTATION_ENABLED] is True  # an automatic rotation proves rotation is on
    assert old[r.NEXT_ROTATION_DUE] == dt.date(2027, 11, 10)  # default period assumed
    assert "assumed the default 365" in old["note"]
    assert (new["last_rotation_type"], new["on_demand_rotations_seen"]) == ("ON_DEMAND", 1)
    # On-demand rotation does not move the automatic schedule.
    assert new[r.NEXT_ROTATION_DUE] == dt.date(2027, 11, 12)


def test_rotation_overdue_after_the_grace_days() -> None:
    rows = _rotation([
        f.call("EnableKeyRotation", _at(dt.date(2026, 8, 1)), "en", f.ADMIN, f.K_PAY,
               {"keyId": "x", "rotationPeriodInDays": 90}),
        f.call("EnableKeyRotation", _at(dt.date(2026, 8, 20)), "en2", f.ADMIN, f.K_RPT,
               {"keyId": "y", "rotationPeriodInDays": 90}),
    ])  # fmt: skip
    late, in_grace = rows[f.K_PAY], rows[f.K_RPT]
    assert (late[r.ROTATION_STATUS], late["days_overdue"]) == ("OVERDUE", 21)  # due 10-30
    assert (in_grace[r.ROTATION_STATUS], in_grace[r.OVERDUE]) == ("ENABLED", False)


def test_disabled_key_is_never_overdue_but_shows_its_state() -> None:
    rows = _rotation([
        f.call("EnableKeyRotation", _at(dt.date(2026, 8, 1)), "en", f.ADMIN, f.K_PAY,
               {"keyId": "x", "rotationPeriodInDays": 90}),
        f.call("DisableKey", _at(dt.date(2026, 9, 1)), "dis", f.ADMIN, f.K_PAY, {"keyId": "x"}),
    ])  # fmt: skip
    row = rows[f.K_PAY]
    assert (row[r.KEY_STATE], row[r.OVERDUE], row[r.ROTATION_STATUS]) == (
        "Disabled",
        False,
        "ENABLED",
    )
    assert "does not rotate a key in state Disabled" in row["note"]


def test_keys_that_cannot_rotate_are_not_applicable_not_failures() -> None:
    hmac = f._create_key(
        _at(dt.date(2026, 11, 1)),
        "hmac",
        f.K_PAY,
        {"keySpec": "HMAC_256"},
        {"keySpec": "HMAC_256", "keyUsage": "GENERATE_VERIFY_MAC"},
    )
    signer = f.call("Sign", _at(dt.date(2026, 11, 2)), "sign", f.SIGNER, f.K_SIGN)
    imported = f.call(
        "ImportKeyMaterial", _at(dt.date(2026, 11, 2)), "imp", f.ADMIN, f.K_IMP, {"keyId": "i"}
    )
    store = f.call(
        "Decrypt",
        _at(dt.date(2026, 11, 2)),
        "cks",
        f.PAYMENTS,
        f.K_CKS,
        additionalEventData={"customKeyStoreId": "cks-1"},
    )
    rows = _rotation([hmac, signer, imported, store])  # fmt: skip
    reasons = {
        key: rows[key]["not_applicable_reason"] for key in (f.K_PAY, f.K_SIGN, f.K_IMP, f.K_CKS)
    }
    assert all(rows[key][r.ROTATION_STATUS] == "NOT_APPLICABLE" for key in reasons)
    assert reasons[f.K_PAY].startswith("HMAC key")
    assert reasons[f.K_SIGN].startswith("asymmetric key")
    assert reasons[f.K_IMP].startswith("imported key material")
    assert reasons[f.K_CKS].startswith("key in a custom key store")


def test_aws_managed_key_is_marked_as_such() -> None:
    use = f.call(
        "Decrypt", _at(dt.date(2026, 11, 2)), "aws", f.PAYMENTS, f.K_AWS, {"keyId": "alias/aws/ebs"}
    )
    row = _rotation([use])[f.K_AWS]
    assert (row[r.ROTATION_STATUS], row[r.KEY_MANAGER], row[r.ALIASES]) == (
        "AWS_MANAGED",
        "AWS",
        ["alias/aws/ebs"],
    )


def test_pending_deletion_key_is_shown_with_its_date() -> None:
    rows = _rotation([
        f.call("ScheduleKeyDeletion", _at(dt.date(2026, 11, 18)), "del", f.ADMIN, f.K_DEL,
               {"keyId": "d", "pendingWindowInDays": 10}),
    ])  # fmt: skip
    row = rows[f.K_DEL]
    assert row[r.PENDING_DELETION] is True
    assert row[r.DELETION_DATE] == dt.datetime(2026, 11, 28, 10, tzinfo=dt.UTC)


def test_kms_api_snapshot_overrides_the_inference() -> None:
    snap = KeySnapshot(
        key_arn=f.K_PAY, key_id="x", account_id=f.ACCOUNT, region=f.REGION, key_manager="CUSTOMER",
        key_spec="SYMMETRIC_DEFAULT", origin="AWS_KMS", key_state="Enabled", rotation_enabled=True,
        rotation_period_days=200, next_rotation_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    unseen = KeySnapshot(
        key_arn=f.K_RPT,
        key_id="y",
        account_id=f.ACCOUNT,
        region=f.REGION,
        key_spec="SYMMETRIC_DEFAULT",
        origin="AWS_KMS",
        rotation_enabled=False,
    )
    rows = _rotation([f.call("Decrypt", _at(dt.date(2026, 11, 2)), "u", f.PAYMENTS, f.K_PAY)],
                     (snap, unseen))  # fmt: skip
    assert rows[f.K_PAY]["rotation_source"] == "kms-api"
    assert rows[f.K_PAY][r.ROTATION_STATUS] == "OVERDUE"  # the API's next date is 19 days ago
    assert rows[f.K_RPT][r.ROTATION_STATUS] == "DISABLED"  # listed by the API, never in the lake


# --- policy audit -----------------------------------------------------------------------------


def test_policy_change_lists_principals_actions_and_conditions(fixture_report: BuiltReport) -> None:
    changes = fixture_report.report.policy_changes
    put = changes.filter((pl.col(s.EVENT_NAME) == "PutKeyPolicy") & pl.col("succeeded")).row(
        0, named=True
    )
    assert put["principals_added"] == [f.ANALYTICS, f"arn:aws:iam::{f.OUTSIDE}:root"]
    assert put["conditions_added"] == [
        f"Allow if StringEquals kms:ViaService s3.{f.REGION}.amazonaws.com"
    ]
    assert put["outside_accounts_added"] == [f.OUTSIDE]
    assert put["previous_event_id"] == f.event_id("create-pay")
    assert put["public_actions"] == []


def test_denied_policy_change_is_listed_without_a_diff(fixture_report: BuiltReport) -> None:
    changes = fixture_report.report.policy_changes
    denied = changes.filter(pl.col(s.ERROR_CODE) == "AccessDenied").row(0, named=True)
    assert denied["succeeded"] is False
    assert denied["principals_added"] is None
    assert "did not change" in denied["summary"]


def test_grant_rows_name_grantee_and_operations(fixture_report: BuiltReport) -> None:
    grants = {row[s.EVENT_NAME]: row for row in fixture_report.report.policy_changes.filter(
        pl.col("change_kind") == r.CHANGE_GRANT).iter_rows(named=True)}  # fmt: skip
    assert grants["CreateGrant"]["grantee_principal"] == f"arn:aws:iam::{f.OUTSIDE}:role/partner"
    assert grants["CreateGrant"]["grant_operations"] == ["Decrypt", "DescribeKey"]
    assert grants["CreateGrant"]["grantee_outside"] is True
    # The revoke names what the grant allowed, from the CreateGrant four days earlier.
    assert grants["RevokeGrant"]["grantee_principal"] == f"arn:aws:iam::{f.ACCOUNT}:role/ec2-worker"
    assert grants["RetireGrant"]["grantee_principal"] is None


def test_policy_opened_to_everyone_lists_public_actions() -> None:
    public = f._policy(
        {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    )
    records = [
        f._create_key(_at(dt.date(2026, 11, 1)), "c", f.K_PAY, {"policy": f.POLICY_V1}),
        f.call("PutKeyPolicy", _at(DAY), "p", f.ADMIN, f.K_PAY, {"keyId": "x", "policy": public}),
    ]
    inputs = inputs_from_records(records, DAY)
    history = walk(inputs.management_events, DAY, traits_from(inputs.key_activity))
    row = policy_audit.build(history).row(0, named=True)
    assert row["public_actions"] == ["kms:Decrypt"]
    assert "now allows * to kms:Decrypt" in row["summary"]
    assert f.PAYMENTS in row["principals_removed"]


def test_reapplied_policy_is_recorded_as_no_change() -> None:
    records = [
        f._create_key(_at(dt.date(2026, 11, 1)), "c", f.K_PAY, {"policy": f.POLICY_V1}),
        f.call(
            "PutKeyPolicy", _at(DAY), "p", f.ADMIN, f.K_PAY, {"keyId": "x", "policy": f.POLICY_V1}
        ),
    ]
    inputs = inputs_from_records(records, DAY)
    history = walk(inputs.management_events, DAY, traits_from(inputs.key_activity))
    assert "no change" in policy_audit.build(history).row(0, named=True)["summary"]


# --- key usage --------------------------------------------------------------------------------


def test_key_usage_keeps_top_actors_and_counts_the_rest(fixture_report: BuiltReport) -> None:
    usage = fixture_report.report.key_usage.filter(pl.col(s.KEY_ARN) == f.K_PAY).row(0, named=True)
    assert [a["name"] for a in usage["top_actors"]][:2] == [f.PAYMENTS, f.ADMIN]
    assert len(usage["top_actors"]) == 5
    assert (usage["other_actors"], usage["other_actor_calls"]) == (1, 1)
    assert (
        sum(a["count"] for a in usage["top_actors"]) + usage["other_actor_calls"] == usage[r.CALLS]
    )


def test_key_usage_counts_errors_ips_and_outside_callers(fixture_report: BuiltReport) -> None:
    usage = fixture_report.report.key_usage.filter(pl.col(s.KEY_ARN) == f.K_PAY).row(0, named=True)
    assert {e["name"]: e["count"] for e in usage["errors_by_code"]} == {
        "AccessDenied": 1, "IncorrectKeyException": 1,
    }  # fmt: skip
    assert usage["caller_accounts"] == [f.ACCOUNT, f.SISTER]
    assert usage["cross_account_calls"] == 1
    assert usage["distinct_source_ips"] == 2


def test_actors_seen_for_the_first_time_are_listed(fixture_report: BuiltReport) -> None:
    usage = fixture_report.report.key_usage.filter(pl.col(s.KEY_ARN) == f.K_PAY).row(0, named=True)
    assert usage["new_actors"] == [f.ANALYTICS, f.DEV, f.SISTER_ROLE, f"root:{f.ACCOUNT}"]


def test_alerts_on_the_key_exclude_suppressed_ones(fixture_report: BuiltReport) -> None:
    usage = fixture_report.report.key_usage.filter(pl.col(s.KEY_ARN) == f.K_PAY).row(0, named=True)
    assert (usage[r.ALERTS], usage["suppressed_alerts"]) == (3, 1)


def test_per_actor_lists_the_keys_it_used(fixture_report: BuiltReport) -> None:
    actors = {row[s.ACTOR]: row for row in fixture_report.report.actor_usage.iter_rows(named=True)}
    admin = actors[f.ADMIN]
    assert [k["name"] for k in admin["keys"]] == [f.K_PAY, f.K_RPT]
    assert admin["new_keys"] == [f.K_RPT]
    assert admin["calls_without_key"] == 1  # ListKeys


def test_top_actor_count_is_a_parameter() -> None:
    records = [f.call("Decrypt", _at(DAY, 9, i), f"u{i}", f"arn:aws:iam::{f.ACCOUNT}:role/r{i}", f.K_PAY)
               for i in range(4)]  # fmt: skip
    inputs = inputs_from_records(records, DAY)
    row = key_usage.by_key(inputs.day_events, DAY, top_actors=2).row(0, named=True)
    assert (len(row["top_actors"]), row["other_actors"], row["other_actor_calls"]) == (2, 2, 2)


def test_an_empty_day_still_builds_every_table() -> None:
    records = [f.call("Decrypt", _at(dt.date(2026, 11, 19)), "y", f.PAYMENTS, f.K_PAY)]
    inputs = inputs_from_records(records, DAY)
    report = build(inputs, f.GENERATED_AT)
    assert report.key_usage.is_empty() and report.policy_changes.is_empty()
    assert report.keys.height == 1  # the key seen the day before is still in the inventory
    for stem, frame in report.tables().items():
        assert frame.columns == r.REPORT_TABLES[stem].names


# --- charts -----------------------------------------------------------------------------------


def test_chart_band_comes_from_the_same_hour_of_earlier_days(fixture_report: BuiltReport) -> None:
    band = fixture_report.report.bands.filter(pl.col(s.KEY_ARN) == f.K_PAY)
    at_13 = band.filter(pl.col("hour_of_day") == 13).row(0, named=True)
    assert at_13["calls"] == 43  # the burst, plus the three calls of every weekday
    assert (at_13["band_low"], at_13["band_median"], at_13["band_high"]) == (3.0, 3.0, 3.0)
    assert at_13["history_days"] == 5  # weekdays only: the report day is a Monday
    assert band.height == 24


def test_unknown_rotation_says_what_the_lake_lacks() -> None:
    """An UNKNOWN row's reason follows from what the lake holds about the key."""
    from analytics.publish.reports import rotation
    from analytics.publish.reports.keyfacts import KeyFacts

    arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ours = frozenset({"111122223333"})
    managed = KeyFacts(arn, events_seen={"ScheduleKeyDeletion"})
    assert rotation.unknown_reason(managed, None, ours) == rotation.UNKNOWN_MANAGED
    assert rotation.unknown_reason(KeyFacts(arn), "symmetric", frozenset({"444455556666"})) == (
        rotation.UNKNOWN_OTHER_ACCOUNT
    )
    assert rotation.unknown_reason(KeyFacts(arn), None, ours) == rotation.UNKNOWN_TYPE
    assert rotation.unknown_reason(KeyFacts(arn), "symmetric", ours) == rotation.UNKNOWN_PREDATES


def test_unknown_rotation_rows_carry_their_reason(fixture_report: BuiltReport) -> None:
    rows = fixture_report.report.rotation
    unknown = rows.filter(pl.col("rotation_status") == "UNKNOWN")
    assert unknown.height >= 1
    assert unknown.get_column("unknown_reason").null_count() == 0
    assert (
        rows.filter(pl.col("rotation_status") != "UNKNOWN")
        .get_column("unknown_reason")
        .null_count()
        == rows.height - unknown.height
    )


@pytest.mark.parametrize(
    ("key", "aliases", "label"),
    [
        ("arn:aws:kms:eu-west-1:1:key/c4761df1-b0f4-4876-ba34-8d8fed6569c5", None, "key/c4761df1…"),
        (
            "arn:aws:kms:eu-west-1:1:key/mrk-0123456789abcdef0123456789abcdef",
            [],
            "key/mrk-01234567…",
        ),
        (
            "arn:aws:kms:eu-west-1:1:key/c4761df1-b0f4",
            ["alias/payments", "alias/z"],
            "alias/payments",
        ),
        ("arn:aws:kms:eu-west-1:1:alias/orders", None, "alias/orders"),
        ("x", ["alias/" + "a" * 80], "alias/" + "a" * 33 + "…"),
        (None, None, "—"),
    ],
)
def test_one_label_names_a_key_in_both_documents(
    key: str | None, aliases: list[str] | None, label: str
) -> None:
    from analytics.publish.reports.text import key_label

    assert key_label(key, aliases) == label
