"""Alert exports: OCSF Detection Findings (file or S3), Splunk HEC and AWS Security Hub.

Every sink is idempotent on ``alert_id`` through a ledger in the lake
(:mod:`analytics.export.idempotency`); suppressed alerts are never exported. The formats
(:mod:`~analytics.export.ocsf`, :mod:`~analytics.export.asff`, :mod:`~analytics.export.hec`)
are pure functions of an alert; the sinks (:mod:`~analytics.export.sinks`) do the I/O.
"""

from __future__ import annotations

from analytics.export.sinks import (
    ExportItem,
    ExportResult,
    HecSink,
    OcsfFileSink,
    RetryPolicy,
    S3Sink,
    SecurityHubSink,
    Sink,
    SinkError,
    default_ocsf_path,
    default_ocsf_sink,
    export,
    prepare,
)

__all__ = [
    "ExportItem",
    "ExportResult",
    "HecSink",
    "OcsfFileSink",
    "RetryPolicy",
    "S3Sink",
    "SecurityHubSink",
    "Sink",
    "SinkError",
    "default_ocsf_path",
    "default_ocsf_sink",
    "export",
    "prepare",
]
