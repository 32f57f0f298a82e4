"""Where a sink's secret and region come from, resolved once for the CLI and the nightly flow.

:func:`analytics.export.settings.build_sink` puts a sink together from settings; what it cannot
know lives here because it needs the process's environment or Prefect: the HEC token (a Prefect
Secret block, else ``KEYTRAIL_HEC_TOKEN``) and the Security Hub region (given, else
``AWS_REGION`` / ``AWS_DEFAULT_REGION``). ``keytrail export`` and the flow's export task both call
:func:`make_sink`, so a sink is built and its secret found the same way whatever started the
export. A token is read only when a HEC sink is built, and no message here ever contains it.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analytics.adapters.lake import LocalLake
    from analytics.export.settings import HecSettings
    from analytics.export.sinks import Sink

HEC_TOKEN_ENV = "KEYTRAIL_HEC_TOKEN"  # noqa: S105 - the variable's name, not a token


class SinkUnavailable(ValueError):
    """A sink cannot be built as asked; the message is one line, safe to print."""


def hec_token(block: str | None) -> str:
    """The HEC token from the Prefect Secret block ``block``, else from the environment."""
    if block:
        try:
            from prefect.blocks.system import Secret
        except ImportError:
            raise SinkUnavailable("a HEC token block needs Prefect installed") from None
        try:
            secret: Any = Secret.load(block)
            value = secret.get()
        except Exception as exc:  # any failure to load must stop the export, token-free
            raise SinkUnavailable(
                f"cannot load the Prefect Secret block {block!r} ({type(exc).__name__})"
            ) from None
        if not isinstance(value, str) or not value:
            raise SinkUnavailable(f"the Prefect Secret block {block!r} holds no token string")
        return value
    token = os.environ.get(HEC_TOKEN_ENV, "")
    if not token:
        raise SinkUnavailable(
            f"no HEC token: set {HEC_TOKEN_ENV} or name a Prefect Secret block "
            "(--hec-token-block NAME, or the flow's hec_token_block)"
        )
    return token


def securityhub_region(region: str | None) -> str:
    """The region findings go to: the one given, else the standard AWS variables."""
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise SinkUnavailable(
            "Security Hub needs a region: --region, securityhub=REGION, or AWS_REGION"
        )
    return found


def make_sink(
    kind: str,
    target: str | None,
    lake: LocalLake,
    day: dt.date,
    *,
    hec: HecSettings | None = None,
    hec_token_block: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Sink:
    """The sink ``kind`` for ``target`` (a file, ``s3://`` URI or collector URL; for Security Hub
    the region). Raises :class:`SinkUnavailable` with a one-line reason for anything unusable."""
    from analytics.export.settings import build_sink

    if kind == "securityhub":
        region, target = securityhub_region(target or region), None
    try:
        return build_sink(
            kind, lake=lake, day=day, target=target, hec_settings=hec,
            token=lambda: hec_token(hec_token_block), endpoint_url=endpoint_url, region=region,
        )  # fmt: skip
    except SinkUnavailable:
        raise
    except ValueError as exc:
        raise SinkUnavailable(str(exc)) from None
