"""Every detector against its stored positive and negative CloudTrail samples.

A positive sample must yield at least one finding, a negative one none. The history of a
detector (``samples/<Name>/history/*.json``, optional) is the 30 days before the sample's day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics.detect.detectors import ALL_DETECTORS, RuleDetector, by_id
from analytics.lake import schema as s
from tests.detectors.helpers import (
    SAMPLES,
    context,
    events_from_files,
    folder_name,
    run,
    sample_history,
)


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(detector, path, id=f"{folder_name(detector)}/{path.stem}")
        for detector in ALL_DETECTORS
        for path in sorted((SAMPLES / folder_name(detector) / kind).glob("*.json"))
    ]


def _run_sample(detector: RuleDetector, path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    events = events_from_files([path])
    history = sample_history(detector)
    if history.height:
        assert history.get_column(s.EVENT_DATE).max() < events.get_column(s.EVENT_DATE).min()
    return events, run(detector, context(events, history))


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.id)
def test_every_detector_has_positive_and_negative_samples(detector: RuleDetector) -> None:
    folder = SAMPLES / folder_name(detector)
    assert list((folder / "positive").glob("*.json")), f"no positive sample in {folder}"
    assert list((folder / "negative").glob("*.json")), f"no negative sample in {folder}"


def test_every_sample_folder_belongs_to_a_detector() -> None:
    known = {folder_name(d) for d in ALL_DETECTORS} | {"panther"}
    folders = {p.name for p in SAMPLES.iterdir() if p.is_dir()}
    assert folders <= known, folders - known


@pytest.mark.parametrize(("detector", "path"), _cases("positive"))
def test_positive_sample_fires(detector: RuleDetector, path: Path) -> None:
    events, findings = _run_sample(detector, path)
    assert findings.height >= 1
    assert findings.get_column(s.SEVERITY).is_in(s.SEVERITIES).all()
    assert findings.get_column(s.OBSERVED_PATTERN).is_in(s.OBSERVED_PATTERNS).all()
    assert (findings.get_column(s.REASON).str.len_chars() > 20).all()
    assert (findings.get_column(s.WINDOW_START) <= findings.get_column(s.WINDOW_END)).all()
    assert findings.schema[s.WINDOW_START] == pl.Datetime("us", "UTC")
    assert (findings.get_column(s.EVIDENCE_COUNT) >= 1).all()
    evidence = set(findings.get_column(s.EVIDENCE_EVENT_IDS).explode().to_list())
    known = set(events.get_column(s.EVENT_ID)) | set(sample_history(detector)[s.EVENT_ID])
    assert evidence and evidence <= known
    day = events.get_column(s.EVENT_DATE).min()
    assert isinstance(day, dt.date)
    assert (findings.get_column(s.WINDOW_END).dt.date() == day).all()


@pytest.mark.parametrize(("detector", "path"), _cases("negative"))
def test_negative_sample_is_silent(detector: RuleDetector, path: Path) -> None:
    _, findings = _run_sample(detector, path)
    assert findings.height == 0, findings.get_column(s.REASON).to_list()


# The strongest finding each positive sample must produce: (severity, observed pattern).
EXPECTED_TOP_FINDING = {
    ("KeyDisabledOrScheduledForDeletion", "disable_key_by_user"): ("high", "CHANGE"),
    ("KeyDisabledOrScheduledForDeletion", "schedule_deletion_7_day_window"): ("critical", "CHANGE"),
    ("KeyDisabledOrScheduledForDeletion", "schedule_deletion_without_resources"): (
        "high",
        "CHANGE",
    ),
    ("ImportedKeyMaterialChanged", "import_key_material"): ("high", "CHANGE"),
    ("ImportedKeyMaterialChanged", "delete_imported_key_material"): ("high", "CHANGE"),
    ("KeyPolicyChanged", "wildcard_principal_string_policy"): ("critical", "EXPOSURE"),
    ("KeyPolicyChanged", "create_key_open_to_everyone"): ("critical", "EXPOSURE"),
    ("KeyPolicyChanged", "outside_account_principal_list"): ("high", "EXPOSURE"),
    ("KeyPolicyChanged", "single_statement_object_new_role"): ("medium", "CHANGE"),
    ("GrantToExternalPrincipal", "grant_to_outside_account_role"): ("high", "EXPOSURE"),
    ("GrantToExternalPrincipal", "grant_to_unplaceable_principal"): ("high", "EXPOSURE"),
    ("GrantToExternalPrincipal", "grant_with_outside_retiring_principal"): ("high", "EXPOSURE"),
    ("RotationDisabled", "disable_rotation_working_hours"): ("medium", "CHANGE"),
    ("RotationDisabled", "disable_rotation_at_night"): ("high", "CHANGE"),
    ("AliasRetargeted", "update_alias_to_other_key"): ("medium", "CHANGE"),
    ("AliasRetargeted", "delete_and_recreate_alias"): ("medium", "CHANGE"),
    ("AliasRetargeted", "update_alias_with_unknown_previous_target"): ("medium", "CHANGE"),
    ("PendingDeletionKeyUsed", "decrypt_refused_as_pending_deletion"): ("high", "FAILURES"),
    ("PendingDeletionKeyUsed", "use_after_schedule_same_day"): ("high", "FAILURES"),
    ("FailedDecryptBurst", "probe_across_many_keys"): ("high", "FAILURES"),
    ("FailedDecryptBurst", "single_key_far_above_baseline"): ("high", "FAILURES"),
    ("RootKmsUsage", "root_decrypts_in_console"): ("high", "RARE"),
    ("RootKmsUsage", "root_schedules_deletion"): ("critical", "CHANGE"),
    ("NewCrossAccountCaller", "outside_account_decrypts"): ("high", "UNSEEN"),
    ("NewCrossAccountCaller", "inside_caller_uses_outside_key"): ("medium", "UNSEEN"),
    ("NewCrossAccountCaller", "organisation_account_new_key"): ("low", "UNSEEN"),
    ("KmsMonitoringDisabled", "stop_logging"): ("critical", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "delete_trail"): ("critical", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "update_trail_single_region"): ("high", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "selectors_exclude_kms"): ("high", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "selectors_write_only"): ("high", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "selectors_data_events_only"): ("high", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "advanced_selectors_exclude_kms"): ("high", "BLIND_SPOT"),
    ("KmsMonitoringDisabled", "advanced_selectors_write_only"): ("high", "BLIND_SPOT"),
    ("NewActorForKey", "new_role_decrypts"): ("low", "UNSEEN"),
    ("NewActorForKey", "sso_person_decrypts"): ("medium", "UNSEEN"),
    ("NewActorForKey", "iam_user_via_secrets_manager"): ("medium", "UNSEEN"),
    ("BulkSecretDecryption", "person_reads_secrets_and_parameters"): ("high", "SURGE"),
    ("BulkSecretDecryption", "ci_role_far_above_its_history"): ("medium", "SURGE"),
}


def test_every_positive_sample_has_an_expected_severity() -> None:
    stored = {(folder_name(d), p.stem) for d, p in (case.values for case in _cases("positive"))}
    assert stored == set(EXPECTED_TOP_FINDING)


@pytest.mark.parametrize(
    ("folder", "sample", "severity", "pattern"),
    [(f, n, sev, pat) for (f, n), (sev, pat) in EXPECTED_TOP_FINDING.items()],
)
def test_positive_sample_severity_and_pattern(
    folder: str, sample: str, severity: str, pattern: str
) -> None:
    detector = by_id(f"KMS.{folder}")
    _, findings = _run_sample(detector, SAMPLES / folder / "positive" / f"{sample}.json")
    rank = findings.get_column(s.SEVERITY).replace_strict(
        {name: i for i, name in enumerate(s.SEVERITIES)}, return_dtype=pl.Int64
    )
    top = findings.with_columns(rank.alias("rank")).sort("rank", descending=True).row(0, named=True)
    assert (top[s.SEVERITY], top[s.OBSERVED_PATTERN]) == (severity, pattern), top[s.REASON]
