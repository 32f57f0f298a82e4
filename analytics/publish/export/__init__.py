"""Alert exports: OCSF Detection Findings (file or S3), Splunk HEC and AWS Security Hub.

Every sink is idempotent on ``alert_id`` through a ledger in the lake
(:mod:`analytics.publish.export.idempotency`); suppressed alerts are never exported. The formats
(:mod:`~analytics.publish.export.ocsf`, :mod:`~analytics.publish.export.asff`,
:mod:`~analytics.publish.export.hec`) are pure functions of an alert; the sinks
(:mod:`~analytics.publish.export.sinks`) do the I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.publish.export.sinks import (
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


def __getattr__(name: str) -> Any:
    """The sinks, imported on first use: the formats and :mod:`~analytics.publish.export.bounds`
    (which every command's terminal output applies) do not need HTTP clients or the lake's
    query engine, so importing them stays cheap."""
    if name in __all__:
        from analytics.publish.export import sinks

        return getattr(sinks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
