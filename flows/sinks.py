"""Where a sink's secret comes from: the HEC token, from a Prefect Secret block or the environment.

Sinks are built by :func:`analytics.publish.export.settings.sink_for` for ``keytrail export`` and
the flow's export task alike; the token is the one thing it cannot know, because a Secret block
needs Prefect. Both callers hand it :func:`hec_token`, called only when a HEC sink is built, and no
message here ever contains the token.
"""

from __future__ import annotations

import os
from typing import Any

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
