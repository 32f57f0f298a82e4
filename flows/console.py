"""Terminal helpers shared by every ``keytrail`` command: safe text, errors, exit codes, dates.

Record strings reach the terminal in error messages, object keys and alert reasons, and a
terminal obeys what they carry: ANSI escapes recolour or rewrite the screen, bidi overrides
reorder it, rich markup (``[bold]``) and emoji codes (``:skull:``) are interpreted by rich.
:func:`plain` makes such text inert, and :func:`terminal` makes consoles that do not expand emoji
codes, so markup written by keytrail is the only styling a line gets.
"""

from __future__ import annotations

import datetime as dt
from typing import IO

import typer
from rich.console import Console
from rich.markup import escape

from analytics.publish.export.bounds import TERMINAL_BYTES, clip, visible
from analytics.redact import redact

EXIT_STRICT = 1
EXIT_USAGE = 2


def terminal(
    stderr: bool = False,
    file: IO[str] | None = None,
    force_terminal: bool | None = None,
    width: int | None = None,
) -> Console:
    """A rich console for keytrail's output: soft-wrapped, no emoji codes expanded."""
    return Console(stderr=stderr, file=file, force_terminal=force_terminal, width=width,
                   soft_wrap=True, emoji=False)  # fmt: skip


console = terminal(stderr=True)


def parse_date(value: str | None, option: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` option value, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def plain(text: str) -> str:
    """Untrusted text (object keys, reasons) made safe for a terminal: credentials of a URL (an
    endpoint named in an error message) redacted, clipped, controls, ANSI escapes and bidi
    characters shown as escapes (``\\x1b``, ``\\u202e``), rich markup escaped. Trailing
    backslashes are shown as ``\\x5c``: left as they are they would escape the markup tag that
    follows them in the caller's line."""
    shown = visible(clip(redact(text), TERMINAL_BYTES))
    bare = shown.rstrip("\\")
    return escape(bare) + "\\x5c" * (len(shown) - len(bare))


def fail(message: str) -> typer.Exit:
    """Print a usage error and return the exit to raise (exit code 2)."""
    console.print(f"[bold red]error:[/] {plain(message)}", highlight=False)
    return typer.Exit(EXIT_USAGE)
