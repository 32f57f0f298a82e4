"""Run the shell blocks a doc marks as tested (```sh test …), so the doc cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def blocks(text: str, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(kind, body) of the fenced blocks whose info string is ``sh <kind>``, in order."""
    found = []
    for match in FENCE.finditer(text):
        words = match.group("info").split()
        if len(words) == 2 and words[0] == "sh" and words[1] in kinds:
            found.append((words[1], match.group("body")))
    return found


def run_blocks(
    doc: Path,
    kinds: tuple[str, ...],
    cwd: Path,
    env: Mapping[str, str],
    prelude: str = "",
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run the marked blocks of ``doc`` in order, in one bash session that stops at the first
    failing command; ``prelude`` runs first (test-only set-up, kept out of the doc)."""
    text = doc.read_text(encoding="utf-8")
    parts = ["set -euo pipefail", prelude]
    parts += [f"# --- sh {kind}\n{body}" for kind, body in blocks(text, kinds)]
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "PYTHONHOME", "PREFECT_"))
    }
    return subprocess.run(
        ["bash", "-c", "\n".join(parts)],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n"
        + (result.stderr[-4000:])
    )
