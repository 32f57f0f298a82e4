"""Every command's --help renders (help texts are Rich markup: a stray bracket breaks them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app

COMMANDS = ["ingest", "detect", "evaluate", "generate", "demo", "report", "export", "run", "serve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_renders_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
