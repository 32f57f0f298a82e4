"""Every rule detector keytrail runs, in one ordered tuple, and lookup by ID.

IDs are part of the alert contract: ``alert_id`` hashes them, suppressions name them, SIEM
searches filter on them. An ID is never renamed or reused; a retired detector's ID stays
retired (tests keep a golden list).
"""

from __future__ import annotations

from analytics.detect.detectors import (
    alias,
    bulk_secret_decryption,
    cross_account,
    failed_decrypt,
    grants,
    imported_material,
    key_deletion,
    key_policy,
    monitoring,
    new_actor,
    pending_deletion,
    root_usage,
    rotation,
)
from analytics.detect.detectors.base import RuleDetector

ALL_DETECTORS: tuple[RuleDetector, ...] = (
    key_deletion.DETECTOR,
    imported_material.DETECTOR,
    key_policy.DETECTOR,
    grants.DETECTOR,
    rotation.DETECTOR,
    alias.DETECTOR,
    pending_deletion.DETECTOR,
    failed_decrypt.DETECTOR,
    root_usage.DETECTOR,
    cross_account.DETECTOR,
    monitoring.DETECTOR,
    new_actor.DETECTOR,
    bulk_secret_decryption.DETECTOR,
)

_BY_ID: dict[str, RuleDetector] = {d.id: d for d in ALL_DETECTORS}
if len(_BY_ID) != len(ALL_DETECTORS):  # pragma: no cover - guarded by tests as well
    raise RuntimeError("two rule detectors share an ID")


def by_id(detector_id: str) -> RuleDetector:
    """The detector with ``detector_id``; a KeyError names the known IDs otherwise."""
    try:
        return _BY_ID[detector_id]
    except KeyError:
        known = ", ".join(sorted(_BY_ID))
        raise KeyError(f"no rule detector {detector_id!r} (known: {known})") from None
