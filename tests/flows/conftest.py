"""Flow tests run against Prefect's local test API, started once per test process (~9 s).

The API is ``prefect_api`` of tests/conftest.py (which also keeps PREFECT_HOME out of the user's
~/.prefect). Tests that run flows request it and carry ``pytest.mark.xdist_group("prefect")``, so
under ``pytest -n 2 --dist loadgroup`` they share one worker and one API.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "trail"
FIRST_DAY = "2026-11-01"
LAST_DAY = "2026-11-14"


@pytest.fixture(scope="session")
def short_window(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration with the shortest baseline window, for tests that are not about
    detection: a 30-day window would recompute features for 30 mostly empty days per run."""
    path = tmp_path_factory.mktemp("config") / "keytrail.toml"
    path.write_text("[baseline]\nwindow_days = 7\n")
    return path


def copy_days(days: list[str], target: Path) -> Path:
    """A trail holding only the sample's delivery folders of ``days`` (YYYY-MM-DD)."""
    wanted = {day.replace("-", "/") for day in days}
    for folder in sorted(SAMPLES.glob("AWSLogs/*/CloudTrail/*/*/*/*")):
        relative = folder.relative_to(SAMPLES)
        if "/".join(relative.parts[-3:]) in wanted:
            shutil.copytree(folder, target / relative)
    return target
