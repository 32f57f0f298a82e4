"""Every command's --help renders, and reads well in an 80-column terminal.

Help texts are Rich markup (a stray bracket breaks them); examples are meant to be copied, so
each example line must come out whole; option help is never cut short with an ellipsis; flags
take no value, so they show no value type.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from flows.cli_help import EXAMPLE_INDENT

COMMANDS = ["ingest", "detect", "evaluate", "generate", "demo", "report", "export", "run", "serve"]
MARKUP = re.compile(r"\[/?[a-z ]*\]")


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = [(path, group)]
    for name, command in getattr(group, "commands", {}).items():
        found.extend(_commands(command, (*path, name)))
    return found


ALL_COMMANDS = _commands(typer.main.get_command(app))


def _help_at_80_columns(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def _example_lines(help_text: str) -> list[str]:
    """The lines of a docstring's indented paragraphs (its examples), markup removed."""
    lines = inspect.cleandoc(help_text).splitlines()
    return [MARKUP.sub("", line).strip() for line in lines if line.startswith(EXAMPLE_INDENT)]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_renders_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert "keytrail " + command in result.output


def test_every_command_is_checked_here() -> None:
    leaves = {" ".join(path) for path, command in ALL_COMMANDS if not hasattr(command, "commands")}
    assert leaves == {*COMMANDS, "lake check", "lake ddl"}


@pytest.mark.parametrize(
    ("path", "command"),
    [
        pytest.param(path, command, id=" ".join(path) or "keytrail")
        for path, command in ALL_COMMANDS
    ],
)
def test_help_reads_well_at_80_columns(path: tuple[str, ...], command: Any) -> None:
    shown = _help_at_80_columns(path)
    lines = {line.strip(" │") for line in shown.splitlines()}
    for example in _example_lines(command.help or ""):
        assert example in lines, f"example split across lines: {example!r}\n{shown}"
    options = [line for line in shown.splitlines() if line.startswith("│")]
    assert not any("…" in line for line in options), f"option help cut short:\n{shown}"
    assert "<bool>" not in shown, f"a flag shown as taking a value:\n{shown}"
    assert all(len(line) <= 80 for line in shown.splitlines())


def test_prose_paragraphs_are_not_broken_at_the_source_line_ends() -> None:
    shown = _help_at_80_columns(("run",))
    assert "detect → publish" in shown  # "detect →" ends a line of the docstring


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"keytrail {importlib.metadata.version('keytrail')}"
