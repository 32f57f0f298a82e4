"""Terminal helpers shared by every ``keytrail`` command: safe text, errors, exit codes, dates."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.markup import escape

from analytics.redact import redact

console = Console(stderr=True, soft_wrap=True)
EXIT_STRICT = 1
EXIT_USAGE = 2


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
    """Untrusted text (object keys, reasons) made safe for a terminal: no markup, no controls,
    no credentials of a URL (an endpoint named in an error message)."""
    printable = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in redact(text))
    return escape(printable)


def fail(message: str) -> typer.Exit:
    """Print a usage error and return the exit to raise (exit code 2)."""
    console.print(f"[bold red]error:[/] {plain(message)}", highlight=False)
    return typer.Exit(EXIT_USAGE)
