"""Sink settings and the one function that builds a sink from them.

``keytrail export`` (its options), the nightly flow (its parameters) and ``keytrail.toml``
(the ``[hec]`` section) all name the same HEC settings; each merges what it was given over the
file's values with :meth:`HecSettings.merged` and hands the result to :func:`build_sink`, so a
sink is put together in one place whatever started the export. The HEC token is not a setting:
it comes from the environment or a Prefect Secret block, through ``token`` — called only when
a HEC sink is built, never stored here, never printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics.adapters.lake import LocalLake
from analytics.publish.export import hec
from analytics.publish.export.idempotency import SINK_KINDS
from analytics.publish.export.sinks import (
    HecSink,
    OcsfFileSink,
    RetryPolicy,
    S3Sink,
    SecurityHubSink,
    Sink,
    default_ocsf_sink,
)


@dataclass(frozen=True)
class HecSettings:
    """How to talk to a Splunk HTTP Event Collector (``[hec]`` in keytrail.toml)."""

    url: str | None = None
    index: str | None = None
    sourcetype: str = hec.SOURCETYPE
    acks: bool = True
    """Count an alert as delivered only when the indexer acknowledges it; off: a 200 counts."""
    ack_timeout_seconds: float = hec.ACK_TIMEOUT_SECONDS
    ca_bundle: str | None = None
    """PEM file of the CA(s) that signed the collector's certificate (else the system's)."""
    verify: bool = True
    max_batch_bytes: int = hec.MAX_BATCH_BYTES
    attempts: int = 6
    """Tries per request on throttling, 5xx and network errors."""

    def merged(self, **overrides: Any) -> HecSettings:
        """These settings with every override that is not None put over them."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line each (empty: usable)."""
        found = []
        if self.url is not None:
            try:
                hec.collector_url(self.url)
            except ValueError as exc:
                found.append(str(exc))
        if self.ack_timeout_seconds <= 0:
            found.append("the HEC ack timeout must be positive (seconds)")
        if not 1_000 <= self.max_batch_bytes <= 100_000_000:
            found.append("the HEC batch limit must be 1,000 to 100,000,000 bytes")
        if self.attempts < 1:
            found.append("HEC attempts must be at least 1")
        if not self.sourcetype:
            found.append("the HEC sourcetype must not be empty")
        return found


def build_sink(
    kind: str,
    *,
    lake: LocalLake,
    day: dt.date,
    target: str | None = None,
    hec_settings: HecSettings | None = None,
    token: Callable[[], str] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Sink:
    """The sink ``kind`` names, for ``target`` (a file, an ``s3://`` URI, a collector URL or a
    region). Raises ValueError with a one-line reason for anything unusable."""
    if kind == "ocsf-file":
        return OcsfFileSink(Path(target)) if target else default_ocsf_sink(lake, day)
    if kind == "s3":
        if not target or not target.startswith("s3://"):
            raise ValueError("sink s3 needs a target: s3://bucket[/prefix]")
        return S3Sink(target, endpoint_url=endpoint_url, region=region)
    if kind == "splunk-hec":
        settings = (hec_settings or HecSettings()).merged(url=target)
        if not settings.url:
            raise ValueError("sink splunk-hec needs a collector URL, e.g. https://splunk:8088")
        problems = settings.problems()
        if problems:
            raise ValueError("; ".join(problems))
        if settings.ca_bundle is not None and not Path(settings.ca_bundle).is_file():
            raise ValueError(f"the HEC CA bundle {settings.ca_bundle} is not a file")
        if token is None:
            raise ValueError("sink splunk-hec needs a token")
        return HecSink(
            settings.url,
            token(),
            index=settings.index,
            sourcetype=settings.sourcetype,
            acks=settings.acks,
            ack_timeout=settings.ack_timeout_seconds,
            ca_bundle=Path(settings.ca_bundle) if settings.ca_bundle else None,
            verify=settings.verify,
            max_bytes=settings.max_batch_bytes,
            policy=RetryPolicy(attempts=settings.attempts),
        )
    if kind == "securityhub":
        from analytics.adapters.securityhub import SecurityHub

        if not region:
            raise ValueError("sink securityhub needs a region (--region, AWS_REGION)")
        return SecurityHubSink(SecurityHub(region, endpoint_url))
    raise ValueError(f"unknown sink {kind!r}; expected one of {', '.join(SINK_KINDS)}")


def securityhub_region(region: str | None) -> str:
    """The region Security Hub findings go to: the one given, else the standard AWS variables."""
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise ValueError("Security Hub needs a region: --region, securityhub=REGION, or AWS_REGION")
    return found


def sink_for(
    kind: str,
    target: str | None,
    *,
    lake: LocalLake,
    day: dt.date,
    hec_settings: HecSettings | None = None,
    token: Callable[[], str] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Sink:
    """The sink a spec names — ``kind`` and its target (a file, an ``s3://`` URI, a collector
    URL; for Security Hub the region, else ``region``, else AWS_REGION) — as ``keytrail
    export`` and the flow's export task both ask for it. ValueError: one line, safe to print."""
    if kind == "securityhub":
        region, target = securityhub_region(target or region), None
    return build_sink(kind, lake=lake, day=day, target=target, hec_settings=hec_settings,
                      token=token, endpoint_url=endpoint_url, region=region)  # fmt: skip
