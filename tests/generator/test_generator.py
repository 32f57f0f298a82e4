"""The synthetic trail generator: layout, determinism, realism and labels.

Two small trees are generated once per module: a two-week single-account tree with scenarios and
``--corrupt`` (the one most tests read), and a three-day organisation-trail tree.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.generator import GenerateSummary, generate_tree
from analytics.generator.identities import label_actor
from analytics.generator.tree import build_plan

pytestmark = pytest.mark.xdist_group("generator")

LOG_NAME = re.compile(
    r"^(\d{12})_CloudTrail_([a-z0-9-]+)_(\d{8}T\d{4}Z)_([A-Za-z0-9]{16})\.json\.gz$"
)
DIGEST_NAME = re.compile(
    r"^(\d{12})_CloudTrail-Digest_([a-z0-9-]+)_([A-Za-z0-9-]+)_([a-z0-9-]+)_(\d{8}T\d{6}Z)\.json\.gz$"
)
LOG_PATH = re.compile(
    r"^AWSLogs/(?:(o-[a-z0-9]{10,32})/)?(\d{12})/(CloudTrail|CloudTrail-Digest)/([a-z0-9-]+)/"
    r"(\d{4})/(\d{2})/(\d{2})/([^/]+)$"
)
DAYS, PER_DAY, SEED = 14, 1500, 3
MALICIOUS_KINDS = {
    "decrypt_exfiltration",
    "failed_decrypt_enumeration",
    "new_outside_account_caller",
    "key_disabled_then_deletion",
    "key_policy_opened",
    "ransomware_imported_key",
    "rotation_disabled_at_night",
    "grant_to_outside_principal",
    "human_3am_new_region",
    "root_kms_usage",
    "kms_monitoring_disabled",
    "bulk_secret_theft",
    "ci_role_secret_dump",
    "mass_key_deletion",
}
DECOY_KINDS = {
    "decoy_new_service_rampup",
    "decoy_monthly_batch",
    "decoy_load_test",
    "decoy_auto_rotation",
}


@dataclass
class Tree:
    root: Path
    summary: GenerateSummary
    labels: dict[str, Any]
    log_files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key -> records

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for recs in self.log_files.values() for r in recs]

    def by_event_id(self) -> dict[str, dict[str, Any]]:
        return {r["eventID"]: r for r in self.records if "eventID" in r}


def _load(root: Path, summary: GenerateSummary) -> Tree:
    labels = json.loads(summary.labels_path.read_text())
    refused = {c["key"] for c in labels["corrupt_objects"]}
    tree = Tree(root, summary, labels)
    for path in sorted(root.glob("AWSLogs/**/CloudTrail/**/*.json.gz")):
        key = path.relative_to(root).as_posix()
        if key in refused:
            continue
        text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        tree.log_files[key] = json.loads(text)["Records"]
    return tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("trail")
    summary = generate_tree(
        root, days=DAYS, events_per_day=PER_DAY, seed=SEED, corrupt=True, workers=1
    )
    return _load(root, summary)


@pytest.fixture(scope="module")
def org_tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    root = tmp_path_factory.mktemp("org-trail")
    summary = generate_tree(
        root, days=3, events_per_day=400, seed=5, org_id="o-a1b2c3d4e5", workers=2
    )
    return _load(root, summary)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _scenario(tree: Tree, kind: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    label = next(s for s in tree.labels["scenarios"] if s["kind"] == kind)
    events = tree.by_event_id()
    return label, [events[i] for i in label["event_ids"]]


def _scenario_event_ids(tree: Tree) -> set[str]:
    return {i for s in tree.labels["scenarios"] for i in s["event_ids"]}


# --- determinism ------------------------------------------------------------------------------


def test_same_arguments_give_identical_trees_whatever_the_worker_count(
    tmp_path: Path, org_tree: Tree
) -> None:
    again = tmp_path / "again"
    generate_tree(again, days=3, events_per_day=400, seed=5, org_id="o-a1b2c3d4e5", workers=1)
    assert _tree_bytes(again) == _tree_bytes(org_tree.root)


def test_a_different_seed_gives_a_different_tree(tmp_path: Path) -> None:
    first = generate_tree(tmp_path / "a", days=2, events_per_day=200, seed=1, workers=1)
    second = generate_tree(tmp_path / "b", days=2, events_per_day=200, seed=2, workers=1)
    assert first.labels_path.read_bytes() != second.labels_path.read_bytes()
    first_keys = set(_tree_bytes(tmp_path / "a")) - {"labels.json"}
    assert first_keys.isdisjoint(_tree_bytes(tmp_path / "b"))


def test_refuses_to_write_over_an_existing_tree(tree: Tree) -> None:
    with pytest.raises(FileExistsError):
        generate_tree(tree.root, days=1, events_per_day=10, seed=SEED, workers=1)


# --- layout -----------------------------------------------------------------------------------


def test_log_files_follow_the_cloudtrail_layout_and_name(tree: Tree) -> None:
    accounts = set(tree.labels["accounts"])
    for key in tree.log_files:
        match = LOG_PATH.match(key)
        assert match, key
        org, account, kind, region, year, month, day, name = match.groups()
        assert org is None
        assert kind == "CloudTrail"
        assert account in accounts
        name_match = LOG_NAME.match(name)
        assert name_match, name
        assert name_match.group(1) == account
        assert name_match.group(2) == region
        assert name_match.group(3)[:8] == f"{year}{month}{day}"  # folder = delivery date


def test_records_sit_in_their_recipient_account_and_region_folder(tree: Tree) -> None:
    for key, records in tree.log_files.items():
        match = LOG_PATH.match(key)
        assert match
        for rec in records:
            assert rec["recipientAccountId"] == match.group(2)
            assert rec["awsRegion"] == match.group(4)


def test_each_log_file_is_one_compact_records_object(tree: Tree) -> None:
    key = next(iter(tree.log_files))
    text = gzip.decompress((tree.root / key).read_bytes())
    assert text.startswith(b'{"Records":[{"eventVersion":')
    assert b"\n" not in text


def test_organisation_trail_puts_the_org_id_before_the_account(org_tree: Tree) -> None:
    keys = [p.relative_to(org_tree.root).as_posix() for p in org_tree.root.rglob("*.json.gz")]
    assert keys
    for key in keys:
        match = LOG_PATH.match(key)
        assert match, key
        assert match.group(1) == "o-a1b2c3d4e5"
    assert org_tree.labels["org_id"] == "o-a1b2c3d4e5"


def test_nothing_but_logs_digests_and_labels_is_written(tree: Tree) -> None:
    for path in tree.root.rglob("*"):
        if path.is_file():
            key = path.relative_to(tree.root).as_posix()
            assert key == "labels.json" or LOG_PATH.match(key), key


def test_digests_are_hourly_chains_listing_the_log_files_by_hash(tree: Tree) -> None:
    digests = sorted(tree.root.glob("AWSLogs/*/CloudTrail-Digest/**/*.json.gz"))
    streams = {(a, r) for a in tree.labels["accounts"] for r in tree.labels["regions"]}
    assert len(digests) == tree.summary.digest_files
    assert len(digests) >= len(streams) * DAYS * 24
    listed = 0
    previous: dict[tuple[str, str], str] = {}
    for path in digests:
        match = DIGEST_NAME.match(path.name)
        assert match, path.name
        raw = gzip.decompress(path.read_bytes())
        digest = json.loads(raw)
        assert "Records" not in digest
        stream = (digest["awsAccountId"], match.group(2))
        start, end = _time(digest["digestStartTime"]), _time(digest["digestEndTime"])
        assert end - start == dt.timedelta(hours=1)
        for entry in digest["logFiles"]:
            body = gzip.decompress((tree.root / entry["s3Object"]).read_bytes())
            assert hashlib.sha256(body).hexdigest() == entry["hashValue"]
            listed += 1
        if stream in previous:
            assert digest["previousDigestHashValue"] == previous[stream]
        previous[stream] = hashlib.sha256(raw).hexdigest()
    assert listed == tree.summary.files_written


# --- volume and delivery ----------------------------------------------------------------------


def test_total_events_are_within_five_percent_of_the_request(tree: Tree) -> None:
    assert tree.summary.events_written == len(tree.records)
    assert abs(len(tree.records) - DAYS * PER_DAY) <= 0.05 * DAYS * PER_DAY


def test_events_of_a_day_also_arrive_in_the_next_days_folder(tree: Tree) -> None:
    later = 0
    for key, records in tree.log_files.items():
        match = LOG_PATH.match(key)
        assert match
        folder = dt.date(int(match.group(5)), int(match.group(6)), int(match.group(7)))
        for rec in records:
            if "eventTime" in rec:
                event_date = _time(rec["eventTime"]).date()
                assert event_date <= folder
                later += event_date < folder
    assert later > 0


def test_a_few_records_arrive_hours_late_with_a_delivery_delay_addendum(tree: Tree) -> None:
    late = [r for r in tree.records if "addendum" in r]
    assert 0.001 < len(late) / len(tree.records) < 0.02
    assert {r["addendum"]["reason"] for r in late} == {"DELIVERY_DELAY"}


def test_event_ids_are_unique_and_uuid_shaped(tree: Tree) -> None:
    ids = [r["eventID"] for r in tree.records if "eventID" in r]
    assert len(ids) == len(set(ids))
    uuid4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid4.match(i) for i in ids)


# --- realism ----------------------------------------------------------------------------------


def test_most_records_are_kms_and_decrypt_leads(tree: Tree) -> None:
    sources = Counter(r["eventSource"] for r in tree.records)
    assert 0.8 <= sources["kms.amazonaws.com"] / len(tree.records) <= 0.92
    names = Counter(r["eventName"] for r in tree.records if r["eventSource"] == "kms.amazonaws.com")
    assert names.most_common(1)[0][0] == "Decrypt"
    for name in ("GenerateDataKey", "Encrypt", "ReEncrypt", "Sign", "GenerateMac", "DescribeKey"):
        assert names[name] > 0, name


def test_every_user_identity_variant_appears(tree: Tree) -> None:
    types = Counter(r["userIdentity"].get("type", "typeless") for r in tree.records)
    for kind in (
        "AssumedRole",
        "IAMUser",
        "AWSService",
        "Root",
        "FederatedUser",
        "WebIdentityUser",
        "IdentityCenterUser",
        "typeless",
    ):
        assert types[kind] > 0, kind
    via = {r["userIdentity"].get("invokedBy") for r in tree.records}
    assert {"s3.amazonaws.com", "secretsmanager.amazonaws.com", "AWS Internal"} <= via


def test_service_mediated_calls_name_the_service_as_source(tree: Tree) -> None:
    for rec in tree.records:
        identity = rec["userIdentity"]
        if identity.get("type") == "AssumedRole" and "invokedBy" in identity:
            assert rec["sourceIPAddress"] == identity["invokedBy"]
            assert rec["userAgent"] == identity["invokedBy"]
            assert "tlsDetails" not in rec


def test_decrypt_names_its_key_in_resources_not_usually_in_parameters(tree: Tree) -> None:
    decrypts = [r for r in tree.records if r["eventName"] == "Decrypt" and "errorCode" not in r]
    assert all(":key/" in r["resources"][0]["ARN"] for r in decrypts)
    with_key = sum("keyId" in (r["requestParameters"] or {}) for r in decrypts)
    assert with_key < 0.5 * len(decrypts)
    assert all(r["responseElements"] is None for r in decrypts)


def test_cross_account_calls_are_logged_in_both_accounts(tree: Tree) -> None:
    shared = [r for r in tree.records if "sharedEventID" in r]
    copies = Counter(r["sharedEventID"] for r in shared)
    both = [sid for sid, n in copies.items() if n == 2]
    assert len(both) > 10
    sid = both[0]
    pair = [r for r in shared if r["sharedEventID"] == sid]
    assert pair[0]["eventID"] != pair[1]["eventID"]
    assert pair[0]["recipientAccountId"] != pair[1]["recipientAccountId"]


def test_rare_benign_errors_have_messages(tree: Tree) -> None:
    benign = _scenario_event_ids(tree)
    errors = [r for r in tree.records if "errorCode" in r and r.get("eventID") not in benign]
    assert 0.003 < len(errors) / len(tree.records) < 0.015
    codes = Counter(r["errorCode"] for r in errors)
    assert {"AccessDenied", "ThrottlingException"} <= set(codes)


def test_event_versions_are_mixed(tree: Tree) -> None:
    versions = {r["eventVersion"] for r in tree.records}
    assert {"1.08", "1.09", "1.10", "1.11"} <= versions


def test_weekdays_are_busier_than_weekends_and_days_than_nights(tree: Tree) -> None:
    per_day: Counter[dt.date] = Counter()
    per_hour: Counter[int] = Counter()
    benign = _scenario_event_ids(tree)
    for rec in tree.records:
        if "eventTime" in rec and rec.get("eventID") not in benign:
            at = _time(rec["eventTime"])
            per_day[at.date()] += 1
            per_hour[at.hour] += 1
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert 0.3 < ratio < 0.55
    office = sum(per_hour[h] for h in range(10, 17)) / 7
    night = sum(per_hour[h] for h in range(5)) / 5
    assert office > 2 * night


def test_people_work_weekday_office_hours_from_few_addresses(tree: Tree) -> None:
    scenario_ids = _scenario_event_ids(tree)
    people = [
        r
        for r in tree.records
        if r.get("eventID") not in scenario_ids
        and r["eventSource"] == "kms.amazonaws.com"
        and "AWSReservedSSO" in r["userIdentity"].get("arn", "")
    ]
    assert people
    for rec in people:
        at = _time(rec["eventTime"])
        assert at.weekday() < 5
        assert 8 <= at.hour < 18
    assert len({r["sourceIPAddress"] for r in people}) <= 12


def test_root_uses_kms_only_inside_a_scenario(tree: Tree) -> None:
    label, _ = _scenario(tree, "root_kms_usage")
    root_events = {r["eventID"] for r in tree.records if r["userIdentity"].get("type") == "Root"}
    assert root_events == set(label["event_ids"])


def test_rotation_events_use_both_service_event_detail_forms(tmp_path: Path) -> None:
    forms = set()
    for seed in range(6):
        out = tmp_path / str(seed)
        generate_tree(out, days=1, events_per_day=50, seed=seed, workers=1)
        for path in out.glob("AWSLogs/*/CloudTrail/**/*.json.gz"):
            for rec in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
                if rec["eventName"] == "RotateKey":
                    assert "type" not in rec["userIdentity"]
                    assert rec["eventType"] == "AwsServiceEvent"
                    forms.add("keyId" in rec["serviceEventDetails"])
    assert forms == {True, False}


# --- labels -----------------------------------------------------------------------------------


def test_labels_name_every_scenario_and_decoy_with_existing_event_ids(tree: Tree) -> None:
    labels = tree.labels
    assert labels["generator"] == "keytrail"
    assert labels["seed"] == SEED
    kinds = {s["kind"]: s for s in labels["scenarios"]}
    assert set(kinds) == MALICIOUS_KINDS | DECOY_KINDS
    events = tree.by_event_id()
    first_allowed = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)  # day index 10
    for scenario in labels["scenarios"]:
        assert scenario["malicious"] == (scenario["kind"] in MALICIOUS_KINDS)
        assert scenario["event_ids"], scenario["id"]
        start, end = _time(scenario["window_start"]), _time(scenario["window_end"])
        for event_id in scenario["event_ids"]:
            at = _time(events[event_id]["eventTime"])
            assert start <= at <= end
        if scenario["malicious"]:
            assert start >= first_allowed
        for arn in scenario["key_arns"]:
            assert re.match(r"^arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$", arn)


def test_labels_file_is_sorted_and_indented(tree: Tree) -> None:
    text = tree.summary.labels_path.read_text()
    assert text.startswith('{\n  "accounts"')
    assert json.dumps(json.loads(text), sort_keys=True, indent=2) == text.rstrip("\n")


def test_no_scenarios_in_windows_shorter_than_two_weeks(org_tree: Tree) -> None:
    assert org_tree.labels["scenarios"] == []


def test_exfiltration_is_a_burst_from_one_new_address(tree: Tree) -> None:
    label, events = _scenario(tree, "decrypt_exfiltration")
    assert len(events) >= 300
    assert {r["eventName"] for r in events} == {"Decrypt"}
    ips = {r["sourceIPAddress"] for r in events}
    assert len(ips) == 1
    actor = label["actors"][0]
    own = [
        r
        for r in tree.records
        if r["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("arn") == actor
        and r.get("eventID") not in set(label["event_ids"])
    ]
    assert own
    assert ips.isdisjoint(r["sourceIPAddress"] for r in own)
    assert {r["userAgent"] for r in events} <= {r["userAgent"] for r in own}
    assert _time(label["window_end"]) - _time(label["window_start"]) <= dt.timedelta(hours=1)


def test_enumeration_fails_across_many_keys(tree: Tree) -> None:
    _, events = _scenario(tree, "failed_decrypt_enumeration")
    keys = {r["resources"][0]["ARN"] for r in events}
    assert len(keys) >= 8
    failed = [r for r in events if r.get("errorCode")]
    assert len(failed) > 0.7 * len(events)


def test_outside_caller_is_seen_in_the_key_owners_copy(tree: Tree) -> None:
    _, events = _scenario(tree, "new_outside_account_caller")
    org_accounts = set(tree.labels["accounts"])
    for rec in events:
        assert rec["userIdentity"]["type"] == "AssumedRole"
        assert rec["userIdentity"]["accountId"] not in org_accounts
        assert rec["userIdentity"]["accountId"] in tree.labels["outside_accounts"]
        assert rec["recipientAccountId"] in org_accounts
        assert "sharedEventID" in rec


def test_key_deletion_is_followed_by_failures_on_the_key(tree: Tree) -> None:
    _, events = _scenario(tree, "key_disabled_then_deletion")
    names = [r["eventName"] for r in sorted(events, key=lambda r: r["eventTime"])]
    assert names[:2] == ["DisableKey", "ScheduleKeyDeletion"]
    schedule = next(r for r in events if r["eventName"] == "ScheduleKeyDeletion")
    assert schedule["requestParameters"]["pendingWindowInDays"] == 7
    assert schedule["responseElements"]["keyState"] == "PendingDeletion"
    failures = [r for r in events if r.get("errorCode") == "KMSInvalidStateException"]
    assert failures
    assert all(r["errorMessage"].endswith("is pending deletion.") for r in failures)


def test_opened_key_policy_is_a_json_string_with_a_wildcard_and_a_baseline(tree: Tree) -> None:
    label, events = _scenario(tree, "key_policy_opened")
    put = next(r for r in events if r["eventName"] == "PutKeyPolicy")
    policy = json.loads(put["requestParameters"]["policy"])
    principals = [s["Principal"]["AWS"] for s in policy["Statement"]]
    assert any("*" in (p if isinstance(p, list) else [p]) for p in principals)
    assert put["requestParameters"]["policyName"] == "default"
    baseline = tree.by_event_id()[label["baseline_event_ids"][0]]
    assert baseline["eventName"] == "PutKeyPolicy"
    normal = json.loads(baseline["requestParameters"]["policy"])["Statement"]
    assert all("*" not in json.dumps(statement["Principal"]) for statement in normal)


def test_ransomware_imports_material_uses_it_in_bulk_and_deletes(tree: Tree) -> None:
    _, events = _scenario(tree, "ransomware_imported_key")
    names = Counter(r["eventName"] for r in events)
    create = next(r for r in events if r["eventName"] == "CreateKey")
    assert create["requestParameters"]["origin"] == "EXTERNAL"
    for name in ("GetParametersForImport", "ImportKeyMaterial", "ScheduleKeyDeletion"):
        assert names[name] == 1
    assert names["ReEncrypt"] + names["GenerateDataKey"] >= 200


def test_control_plane_scenarios_look_right(tree: Tree) -> None:
    _, rotation = _scenario(tree, "rotation_disabled_at_night")
    disable = next(r for r in rotation if r["eventName"] == "DisableKeyRotation")
    assert _time(disable["eventTime"]).hour == 2
    _, grant = _scenario(tree, "grant_to_outside_principal")
    grantee = grant[0]["requestParameters"]["granteePrincipal"]
    assert grantee.split(":")[4] in tree.labels["outside_accounts"]
    _, monitoring = _scenario(tree, "kms_monitoring_disabled")
    selectors = monitoring[0]["requestParameters"]["eventSelectors"]
    assert selectors[0]["excludeManagementEventSources"] == ["kms.amazonaws.com"]
    label, root = _scenario(tree, "root_kms_usage")
    assert label["actors"] == [f"root:{root[0]['recipientAccountId']}"]
    assert {r["userIdentity"]["type"] for r in root} == {"Root"}


def test_human_at_three_in_the_morning_uses_a_new_region(tree: Tree) -> None:
    label, events = _scenario(tree, "human_3am_new_region")
    actor = label["actors"][0]
    before = {
        r["awsRegion"]
        for r in tree.records
        if r["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("arn") == actor
        and r["eventSource"] == "kms.amazonaws.com"
        and r.get("eventID") not in set(label["event_ids"])
    }
    assert {r["awsRegion"] for r in events}.isdisjoint(before)
    assert {_time(r["eventTime"]).hour for r in events} == {3}


def _decrypts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in events if r["eventSource"] == "kms.amazonaws.com"]


def test_bulk_secret_theft_decrypts_each_secret_through_the_services(tree: Tree) -> None:
    label, events = _scenario(tree, "bulk_secret_theft")
    decrypts = _decrypts(events)
    assert {r["eventName"] for r in decrypts} == {"Decrypt"}
    for rec in decrypts:
        via = rec["userIdentity"]["invokedBy"]
        assert via in ("secretsmanager.amazonaws.com", "AWS Internal")
        assert rec["sourceIPAddress"] == rec["userAgent"] == via
        assert rec["userIdentity"]["type"] == "IAMUser"
        assert rec["userIdentity"]["arn"] == label["actors"][0]
        assert "tlsDetails" not in rec and "keyId" not in rec["requestParameters"]
        context = rec["requestParameters"]["encryptionContext"]
        assert set(context) in ({"SecretARN", "SecretVersionId"}, {"PARAMETER_ARN"})
        assert (via == "AWS Internal") == ("PARAMETER_ARN" in context)
    names = {next(iter(r["requestParameters"]["encryptionContext"].values())) for r in decrypts}
    assert len(names) == len(decrypts) >= 40
    own = [r for r in events if r["eventSource"] != "kms.amazonaws.com"]
    assert {r["eventName"] for r in own} >= {"ListSecrets", "BatchGetSecretValue",
                                             "GetSecretValue", "GetParametersByPath"}  # fmt: skip
    assert len({r["sourceIPAddress"] for r in own}) == 1
    assert _time(label["window_end"]) - _time(label["window_start"]) <= dt.timedelta(minutes=15)


def test_ci_secret_dump_reads_far_more_secrets_than_the_role_usually_does(tree: Tree) -> None:
    label, events = _scenario(tree, "ci_role_secret_dump")
    dumped = {r["requestParameters"]["encryptionContext"]["SecretARN"] for r in _decrypts(events)}
    ids = set(label["event_ids"])
    usual = {
        r["requestParameters"]["encryptionContext"]["SecretARN"]
        for r in tree.records
        if r["eventName"] == "Decrypt"
        and r.get("eventID") not in ids
        and r["userIdentity"].get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
        == label["actors"][0]
    }
    assert len(usual) == 1 and usual < dumped
    assert len(dumped) >= 20


def test_mass_key_deletion_schedules_several_keys_and_its_victims_are_consequences(
    tree: Tree,
) -> None:
    label, events = _scenario(tree, "mass_key_deletion")
    scheduled = [r for r in events if r["eventName"] == "ScheduleKeyDeletion"]
    assert {r["resources"][0]["ARN"] for r in scheduled} == set(label["key_arns"])
    assert len(scheduled) >= 3
    first, last = min(r["eventTime"] for r in scheduled), max(r["eventTime"] for r in scheduled)
    assert _time(last) - _time(first) <= dt.timedelta(minutes=5)
    _check_consequences(tree, label)


def test_callers_of_the_deleted_key_are_labelled_as_consequences(tree: Tree) -> None:
    label, _ = _scenario(tree, "key_disabled_then_deletion")
    _check_consequences(tree, label)


def _check_consequences(tree: Tree, label: dict[str, Any]) -> None:
    """Consequences are the legitimate callers' failures: in the scenario, apart, by others."""
    caused = label["consequence_event_ids"]
    assert caused and set(caused) <= set(label["event_ids"])
    events = tree.by_event_id()
    attacker = label["actors"][0]
    assert label["affected_actors"] and attacker not in label["affected_actors"]
    assert set(label["affected_actors"]) <= set(label["actors"])
    for event_id in caused:
        rec = events[event_id]
        assert rec["errorCode"] in ("KMSInvalidStateException", "DisabledException")
        assert rec["resources"][0]["ARN"] in label["key_arns"]
        assert label_actor(rec["userIdentity"]) in label["affected_actors"]


@settings(max_examples=40, deadline=None)
@given(start=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_the_month_end_decoy_ran_a_month_earlier_inside_a_35_day_window(start: dt.date) -> None:
    plan = build_plan(seed=SEED, start=start, days=35, events_per_day=100, org_id=None,
                      corrupt=False)  # fmt: skip
    (decoy,) = [s for s in plan.scenarios if s.kind == "decoy_monthly_batch"]
    earlier = [d for d in plan.batch_days if d < decoy.day]
    assert earlier, (start, plan.batch_days)
    assert plan.date_of(earlier[-1]).day == plan.date_of(decoy.day).day
    assert decoy.day - earlier[-1] <= 31


def test_decoys_are_benign_and_ramp_up_grows(tree: Tree) -> None:
    _, rampup = _scenario(tree, "decoy_new_service_rampup")
    per_day = Counter(_time(r["eventTime"]).date() for r in rampup)
    days = sorted(per_day)
    assert len(days) >= 3
    # a dozen calls a day at most in this small tree (and fewer at weekends): compare the first
    # day with the later days' mean, not with one noisy day
    later = [per_day[d] for d in days[1:]]
    assert sum(later) / len(later) > per_day[days[0]]
    _, rotations = _scenario(tree, "decoy_auto_rotation")
    assert {r["eventName"] for r in rotations} == {"RotateKey"}


# --- corruption and hostile strings -----------------------------------------------------------


def test_corrupt_objects_are_written_with_log_file_names(tree: Tree) -> None:
    objects = {c["defect"]: c for c in tree.labels["corrupt_objects"]}
    assert set(objects) == {
        "truncated_gzip",
        "not_gzip",
        "invalid_json",
        "no_records_key",
        "zero_bytes",
        "gzip_bomb",
        "duplicate_delivery",
    }
    for entry in objects.values():
        assert LOG_NAME.match(entry["key"].rsplit("/", 1)[1])
        assert (tree.root / entry["key"]).exists()
    assert (tree.root / objects["zero_bytes"]["key"]).stat().st_size == 0
    with pytest.raises((OSError, EOFError)):
        gzip.decompress((tree.root / objects["truncated_gzip"]["key"]).read_bytes())
    with pytest.raises(OSError):
        gzip.decompress((tree.root / objects["not_gzip"]["key"]).read_bytes())
    assert (tree.root / objects["gzip_bomb"]["key"]).stat().st_size < 1_000_000
    duplicate = objects["duplicate_delivery"]
    assert (tree.root / duplicate["key"]).read_bytes() == (
        tree.root / duplicate["copy_of"]
    ).read_bytes()
    assert not duplicate["quarantine"]


def test_gzip_bomb_expands_past_300_megabytes(tree: Tree) -> None:
    bomb = next(c for c in tree.labels["corrupt_objects"] if c["defect"] == "gzip_bomb")
    with gzip.open(tree.root / bomb["key"]) as stream:
        total = 0
        while chunk := stream.read(1 << 22):
            total += len(chunk)
    assert total > 300 * 1024 * 1024


def test_bad_records_are_inside_good_files(tree: Tree) -> None:
    defects = Counter(b["defect"] for b in tree.labels["bad_records"])
    assert defects == {"missing_eventTime": 2, "missing_eventID": 2, "invalid_utf8": 1}
    for bad in tree.labels["bad_records"]:
        records = tree.log_files[bad["key"]]
        if bad["defect"] == "missing_eventTime":
            assert any(
                r.get("eventID") == bad["event_id"] and "eventTime" not in r for r in records
            )
        elif bad["defect"] == "missing_eventID":
            assert any("eventID" not in r for r in records)
        else:
            body = gzip.decompress((tree.root / bad["key"]).read_bytes())
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
            assert any(r.get("eventID") == bad["event_id"] for r in records)


def test_hostile_strings_are_valid_records(tree: Tree) -> None:
    kinds = {h["kind"]: h for h in tree.labels["hostile_records"]}
    assert set(kinds) == {"html_script", "newline_and_quotes", "oversized_10kb", "sql_injection"}
    events = tree.by_event_id()
    assert events[kinds["html_script"]["event_id"]]["userAgent"] == "<script>alert(1)</script>"
    assert "\n" in events[kinds["newline_and_quotes"]["event_id"]]["userAgent"]
    assert len(events[kinds["oversized_10kb"]["event_id"]]["userAgent"]) > 10_000
    context = events[kinds["sql_injection"]["event_id"]]["requestParameters"]["encryptionContext"]
    assert "'; DROP TABLE events; --" in context.values()


def test_generator_imports_neither_prefect_nor_boto3() -> None:
    code = (
        "import sys, analytics.generator; "
        "sys.exit(any(m in sys.modules for m in ('prefect', 'boto3')))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
