"""``keytrail run --task-runner dask`` shows the run's own log lines, not the local Dask
cluster's INFO chatter (scheduler, nanny and worker start-up and shutdown); --verbose brings it
back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import REPO, copy_days

pytestmark = [pytest.mark.xdist_group("prefect")]


def test_a_dask_run_keeps_the_clusters_info_lines_out(prefect_api: str, tmp_path: Path) -> None:
    trail = copy_days(["2026-11-13", "2026-11-14"], tmp_path / "trail")
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "300"}
    env.pop("DASK_LOGGING__DISTRIBUTED", None)
    command = [sys.executable, "-m", "flows", "run", "--source", str(trail),
               "--lake", str(tmp_path / "lake"), "--date", "2026-11-13",
               "--task-runner", "dask", "--dask-workers", "1"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "2026-11-13:" in done.stdout
    chatter = [line for line in shown.splitlines() if "| INFO    | distributed." in line]
    assert chatter == [], "\n".join(chatter)
