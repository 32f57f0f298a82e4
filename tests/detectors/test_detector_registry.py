"""The registry: IDs are unique and never change, and every detector carries its metadata."""

from __future__ import annotations

import re

import polars as pl
import pytest

from analytics.detect.detectors import ALL_DETECTORS, FINDING_COLUMNS, RuleDetector, by_id
from analytics.lake import schema as s
from tests.detectors.helpers import context, empty_events, run

# Alert IDs, suppressions and SIEM searches name these. Add new IDs at the end; never rename,
# reorder meaning or reuse one.
GOLDEN_IDS = (
    "KMS.KeyDisabledOrScheduledForDeletion",
    "KMS.ImportedKeyMaterialChanged",
    "KMS.KeyPolicyChanged",
    "KMS.GrantToExternalPrincipal",
    "KMS.RotationDisabled",
    "KMS.AliasRetargeted",
    "KMS.PendingDeletionKeyUsed",
    "KMS.FailedDecryptBurst",
    "KMS.RootKmsUsage",
    "KMS.NewCrossAccountCaller",
    "KMS.KmsMonitoringDisabled",
    "KMS.NewActorForKey",
    "KMS.BulkSecretDecryption",
)


def test_detector_ids_are_the_golden_list() -> None:
    assert tuple(d.id for d in ALL_DETECTORS) == GOLDEN_IDS


def test_detector_ids_are_unique() -> None:
    ids = [d.id for d in ALL_DETECTORS]
    assert len(ids) == len(set(ids))


def test_by_id_finds_each_detector() -> None:
    for detector in ALL_DETECTORS:
        assert by_id(detector.id) is detector


def test_by_id_names_the_known_ids_when_missing() -> None:
    with pytest.raises(KeyError, match=re.escape("KMS.RootKmsUsage")):
        by_id("KMS.NoSuchDetector")


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.id)
def test_detector_metadata_is_complete(detector: RuleDetector) -> None:
    assert detector.title and len(detector.title) <= 80
    assert detector.severity in s.SEVERITIES
    assert len(detector.description) > 100
    assert detector.mitre_attack
    assert all(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in detector.mitre_attack)
    steps = re.findall(r"^\d\. ", detector.runbook, flags=re.MULTILINE)
    assert 3 <= len(steps) <= 6, detector.runbook


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.id)
def test_detector_is_silent_on_an_empty_day(detector: RuleDetector) -> None:
    findings = run(detector, context(empty_events()))
    assert findings.height == 0
    assert findings.schema == pl.Schema(FINDING_COLUMNS)


@pytest.mark.parametrize("detector", ALL_DETECTORS, ids=lambda d: d.id)
def test_detector_settings_defaults_cover_what_it_reads(detector: RuleDetector) -> None:
    # An empty settings dict must work (defaults apply) and so must the declared defaults.
    run(detector, context(empty_events(), settings=dict(detector.defaults)))
