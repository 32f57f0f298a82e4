"""Record strings on the terminal: no escape sequence, bidi control, markup or emoji code of
theirs takes effect; keytrail's own styling is the only styling a line gets."""

from __future__ import annotations

import io

import pytest
from rich.text import Text

from flows.console import plain, terminal

HOSTILE = [
    "\x1b[2J\x1b[31mcleared and red",
    "report\u202egnp.exe",
    "[bold red]fake error[/] [link=http://evil.example]click[/link]",
    ":skull: :warning:",
    "ends with a backslash\\",
    "two\\\\",
    "bell\x07 and C1\x9b31m",
]


def _render(markup: str | Text) -> str:
    out = io.StringIO()
    terminal(file=out, force_terminal=True, width=400).print(markup, highlight=False)
    return out.getvalue()


@pytest.mark.parametrize("raw", HOSTILE)
def test_plain_text_prints_as_the_text_it_shows(raw: str) -> None:
    shown = _render(f"[red]failed[/] {plain(raw)}[bold]![/]")
    expected = _render(Text.assemble(("failed", "red"), " ", plain_text(raw), ("!", "bold")))
    assert shown == expected
    for sequence in ("\x1b[2J", "\x1b[31mcleared", "\u202e", "\x07", "\x9b", "💀", "\x1b]8;"):
        assert sequence not in shown


def plain_text(raw: str) -> str:
    """What the reader should see: the text with invisible characters as escapes."""
    from analytics.publish.export.bounds import visible

    shown = visible(raw)
    bare = shown.rstrip("\\")
    return bare + "\\x5c" * (len(shown) - len(bare))


def test_plain_clips_a_megabyte_value() -> None:
    shown = Text.from_markup(plain("A" * 1_048_576)).plain
    assert len(shown.encode()) <= 2048
    assert shown.endswith("…[clipped, 1048576 bytes]")
