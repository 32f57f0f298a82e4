"""detect counts the feature days it recomputed among the days the lake has events for, not
the whole baseline window (a 3-day lake never recomputes 36 days)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from tests.flows.conftest import copy_days

DAYS = ["2026-11-12", "2026-11-13", "2026-11-14"]


def _detect(lake: Path, day: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["detect", "--lake", str(lake), "--date", day, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_only_days_with_events_are_recomputed(tmp_path: Path) -> None:
    trail = copy_days([*DAYS, "2026-11-15"], tmp_path / "trail")
    lake = tmp_path / "lake"
    ingested = CliRunner().invoke(app, ["ingest", str(trail), "--lake", str(lake),
                                        "--start", DAYS[0], "--end", DAYS[-1], "--json"])  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    with_events = sorted(p.name.split("=")[1] for p in (lake / "events").iterdir())
    assert with_events == DAYS
    assert _detect(lake, DAYS[-1])["feature_days_recomputed"] == len(DAYS)
    assert _detect(lake, DAYS[-1])["feature_days_recomputed"] == 0
    assert len(list((lake / "features").rglob("*.parquet"))) == len(DAYS)
