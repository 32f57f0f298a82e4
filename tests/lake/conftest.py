"""Lake tests: keytrail as its own process, and other processes holding a lake's lock.

The sample lake and its per-test copies (``sample_lake``, ``lake_copy``) come from tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "trail"
LAST_DAY = "2026-11-14"


def keytrail_process(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m flows …`` as its own process, the way an operator or cron starts it;
    ``env`` is added to this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "flows", *(str(a) for a in args)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_HOLDER = """
import sys
from pathlib import Path
from analytics.adapters.lock import LakeLock
with LakeLock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


class Holder:
    """Another process holding a lake's lock until :meth:`release`."""

    def __init__(self, lake: Path, command: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(lake), command],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait()


@pytest.fixture
def hold() -> Iterator[type[Holder]]:
    """Start holders with ``hold(lake, command)``; every one is released after the test."""
    started: list[Holder] = []

    class Tracked(Holder):
        def __init__(self, lake: Path, command: str) -> None:
            super().__init__(lake, command)
            started.append(self)

    yield Tracked
    for holder in started:
        holder.release()
