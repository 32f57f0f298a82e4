"""How ``keytrail … --help`` reads in a narrow terminal (80 columns is the size to design for).

Typer's Rich help keeps every line break of a docstring after its first line, so a paragraph
wrapped at 100 columns in the source breaks twice per line on an 80-column screen, and it shows
a flag's type as ``<bool>`` although a flag takes no value. :func:`tidy_help` fixes both on a
command just before its help is drawn: prose paragraphs are joined into one line for Rich to
wrap; indented paragraphs (the examples) keep their lines exactly as written.
"""

from __future__ import annotations

import inspect
from typing import Any

EXAMPLE_INDENT = "    "


def reflow(help_text: str) -> str:
    """A docstring with each prose paragraph on one line; indented paragraphs left as they are."""
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(
        paragraph if paragraph.startswith(EXAMPLE_INDENT) else " ".join(paragraph.split("\n"))
        for paragraph in paragraphs
    )


def tidy_help(command: Any, ctx: Any) -> None:
    """Reflow ``command``'s help and show no value type for its flags (``--help`` included).

    ``command`` and ``ctx`` are typer's vendored click objects (untyped for mypy)."""
    if command.help and not getattr(command, "_keytrail_tidy", False):
        command.help = reflow(command.help)
        command._keytrail_tidy = True
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
