"""``make setup`` says what it is doing, one short line per step, keeps pip's warnings to
itself, and still fails when pip fails.

Read from ``make -n`` (what make would run, nothing run): a real setup downloads and installs
every dependency, minutes of work that prove nothing these lines do not.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO

STEPS = ("creating .venv/", "installing pinned dependencies", "installing keytrail")


@pytest.fixture(scope="module")
def setup_commands() -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shown = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "setup"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return shown.splitlines()


def test_every_pip_call_is_quiet_and_skips_the_version_check(setup_commands: list[str]) -> None:
    pip = [line for line in setup_commands if " -m pip " in line]
    assert len(pip) == 3
    for line in pip:
        assert "--disable-pip-version-check" in line and re.search(r"(^| )-qq( |$)", line)
        assert "|| true" not in line and not line.startswith("-")  # a failure stops make


def test_each_step_is_announced_before_it_runs(setup_commands: list[str]) -> None:
    text = "\n".join(setup_commands)
    positions = [text.find(step) for step in STEPS]
    assert all(p >= 0 for p in positions), positions
    assert positions == sorted(positions)
    requirements = text.find("install -r requirements.lock")
    assert positions[1] < requirements < positions[2] < text.find("install --no-deps -e .")


def test_the_stamp_is_written_only_after_the_installs(setup_commands: list[str]) -> None:
    touch = next(
        i for i, line in enumerate(setup_commands) if "touch .venv/.keytrail-installed" in line
    )
    last_pip = max(i for i, line in enumerate(setup_commands) if " -m pip " in line)
    assert touch > last_pip


def test_the_makefile_echoes_its_progress_not_its_commands() -> None:
    recipe = (REPO / "Makefile").read_text().split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    commands = [line for line in recipe.splitlines()[1:] if line.startswith("\t")]
    assert commands and all(line.startswith("\t@") for line in commands)
