"""Run ``keytrail`` the way an operator does — a separate process — and read what it showed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO, free_port

SECRET = "s3cret-Pa55"  # a made-up password that must never be shown
TOKEN = "tok-9f8e7d"  # a made-up token that must never be shown


@dataclass(frozen=True)
class Shown:
    returncode: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def keytrail(*args: object, env: dict[str, str] | None = None) -> Shown:
    """``python -m flows ARGS`` with one try per AWS request (the endpoints here never answer)."""
    merged = {**os.environ, "AWS_MAX_ATTEMPTS": "1", "COLUMNS": "300", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "flows", *map(str, args)],
        cwd=REPO, env=merged, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return Shown(done.returncode, done.stdout, done.stderr)


def dead_endpoint(user_info: str = "") -> str:
    """An http URL of a loopback port with nothing listening (connection refused at once)."""
    return f"http://{user_info}127.0.0.1:{free_port()}"


def files_containing(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``needle``."""
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]
