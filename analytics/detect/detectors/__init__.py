"""Rule detectors: deterministic, explained KMS findings over one day of events.

``ALL_DETECTORS`` is what the nightly flow runs; ``by_id`` finds one for suppressions and the
CLI. Each detector lives in its own module with its metadata, runbook and a pure ``detect``.
"""

from analytics.detect.detectors.base import (
    FINDING_COLUMNS,
    DetectionContext,
    RuleDetector,
    conform_findings,
    empty_findings,
)
from analytics.detect.detectors.registry import ALL_DETECTORS, by_id

__all__ = [
    "ALL_DETECTORS",
    "FINDING_COLUMNS",
    "DetectionContext",
    "RuleDetector",
    "by_id",
    "conform_findings",
    "empty_findings",
]
