"""A usage mistake ends any command with exactly one ``error:`` line naming the problem, exit 2,
no traceback, and no folder left behind. (Unreachable endpoints and missing credentials: tests/ops.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "trail"
DAY = "2026-11-10"


def _run(tmp_path: Path, *args: object) -> str:
    """``keytrail ARGS`` in ``tmp_path``; asserts the one-line-error contract, returns the line."""
    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    shown = result.output
    assert result.exit_code == 2, shown
    assert "Traceback" not in shown and "╭" not in shown, shown
    errors = [line for line in shown.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, shown
    assert sorted(tmp_path.rglob("*")) == before, "the failed command left files or folders"
    return errors[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "lake.txt"
    path.write_text("not a lake\n")
    return path


LAKE_COMMANDS = {
    "ingest": ["ingest", SAMPLES],
    "detect": ["detect", "--date", DAY],
    "report": ["report", "--date", DAY],
    "export": ["export", "--date", DAY, "--sink", "ocsf-file"],
    "evaluate": ["evaluate", "--labels", SAMPLES / "labels.json"],
    "run": ["run", "--source", SAMPLES, "--date", DAY],
    "demo": ["demo", "--samples", SAMPLES],
    "lake check": ["lake", "check"],
    "serve": ["serve", "--source", SAMPLES],
}


@pytest.mark.parametrize("command", LAKE_COMMANDS.values(), ids=LAKE_COMMANDS.keys())
def test_a_lake_that_is_a_file(tmp_path: Path, a_file: Path, command: list[object]) -> None:
    error = _run(tmp_path, *command, "--lake", a_file)
    assert f"lake {a_file} is not a folder" in error


@pytest.mark.parametrize(
    "command",
    [LAKE_COMMANDS[name] for name in ("detect", "report", "export", "evaluate", "lake check")],
    ids=["detect", "report", "export", "evaluate", "lake check"],
)
def test_a_lake_that_does_not_exist(tmp_path: Path, command: list[object]) -> None:
    error = _run(tmp_path, *command, "--lake", tmp_path / "no-lake")
    assert f"lake {tmp_path / 'no-lake'} not found" in error


def test_generate_into_a_file(tmp_path: Path, a_file: Path) -> None:
    assert f"{a_file} is not a folder" in _run(tmp_path, "generate", a_file, "--days", "1")


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "{missing}", "--lake", "{lake}"],
        ["run", "--source", "{missing}", "--lake", "{lake}", "--date", DAY],
        ["demo", "--samples", "{missing}", "--lake", "{lake}"],
    ],
    ids=["ingest", "run", "demo"],
)
def test_a_source_that_does_not_exist(tmp_path: Path, command: list[str]) -> None:
    missing, lake = tmp_path / "no-trail", tmp_path / "lake"
    args = [part.format(missing=missing, lake=lake) for part in command]
    assert str(missing) in _run(tmp_path, *args)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["ingest", SAMPLES, "--start", "2026-13-01"], "--start"),
        (["detect", "--date", "2026/11/10"], "--date"),
        (["report", "--date", "10-11-2026"], "--date"),
        (["export", "--date", "yesterday", "--sink", "ocsf-file"], "--date"),
        (["run", "--source", SAMPLES, "--date", "2026-11-31"], "--date"),
        (["generate", "{tmp}/trail", "--start", "2026-11"], "--start"),
    ],
    ids=["ingest", "detect", "report", "export", "run", "generate"],
)
def test_a_date_in_the_wrong_format(tmp_path: Path, command: list[object], option: str) -> None:
    args = [str(part).format(tmp=tmp_path) for part in command]
    if args[0] != "generate":
        args += ["--lake", str(tmp_path / "lake")]
    error = _run(tmp_path, *args)
    assert option in error and "is not a date (YYYY-MM-DD)" in error


@pytest.mark.parametrize(
    "command",
    [
        ["detect", "--date", DAY],
        ["report", "--date", DAY],
        ["run", "--source", SAMPLES, "--date", DAY],
        ["serve", "--source", SAMPLES],
    ],
    ids=["detect", "report", "run", "serve"],
)
def test_an_unknown_config_key(tmp_path: Path, command: list[object]) -> None:
    config = tmp_path / "keytrail.toml"
    config.write_text("[no_such_section]\nthreshold = 3\n")
    error = _run(tmp_path, *command, "--lake", tmp_path / "lake", "--config", config)
    assert str(config) in error and "no_such_section" in error


def test_a_missing_labels_file(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    error = _run(tmp_path, "evaluate", "--lake", tmp_path / "lake", "--labels", tmp_path / "x.json")
    assert f"labels {tmp_path / 'x.json'}" in error


def test_a_missing_option_and_an_unknown_one(tmp_path: Path) -> None:
    assert "--date" in _run(tmp_path, "detect", "--lake", tmp_path / "lake")
    assert "--no-such" in _run(tmp_path, "detect", "--lake", tmp_path / "lake", "--no-such")
