"""The backfill flow: days in order, each scored only against the days before it, resumable."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.config import load as load_config
from analytics.detect import scoring as detect
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import IngestOptions, ingest
from tests.flows import helpers
from tests.flows.conftest import copy_days

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]

DAYS = ["2026-11-12", "2026-11-13", "2026-11-14"]


@pytest.fixture(scope="session")
def backfilled(
    tmp_path_factory: pytest.TempPathFactory, short_window: Path
) -> tuple[Path, Path, dict[str, Any]]:
    from flows.backfill import backfill

    root = tmp_path_factory.mktemp("backfill")
    tree = copy_days([*DAYS, "2026-11-15"], root / "trail")
    lake = root / "lake"
    result = backfill(source=str(tree), lake=str(lake), start=DAYS[0], end=DAYS[-1],
                      config=str(short_window))  # fmt: skip
    return tree, lake, result


def test_a_backfill_scores_each_day_in_order(backfilled: tuple[Path, Path, dict[str, Any]]) -> None:
    _, lake, result = backfilled
    assert [day["date"] for day in result["days"]] == DAYS
    assert all(day["skipped"] is False for day in result["days"])
    for day in DAYS:
        assert (lake / "reports" / day / "report.html").exists()
        assert (lake / "_state" / "days" / f"{day}.json").exists()


def test_each_day_sees_only_the_days_before_it(
    backfilled: tuple[Path, Path, dict[str, Any]], tmp_path: Path, short_window: Path
) -> None:
    """The lake held all three days before any was scored; a day's alerts are still those of
    a lake that ended on that day (what the nightly run would have produced)."""
    tree, lake, result = backfilled
    assert [day["history_days"] for day in result["days"]] == [0, 1, 2]
    middle = dt.date.fromisoformat(DAYS[1])
    alone = LocalLake(tmp_path / "lake")
    selection = Selection(dt.date.fromisoformat(DAYS[0]), middle)
    ingest(LocalSource(tree), alone, IngestOptions(selection=selection, workers=1))
    expected = detect.run(alone, middle, load_config(short_window)).alerts
    assert_frame_equal(helpers.alerts(lake, DAYS[1]), expected)
    assert result["days"][1]["alerts"] == expected.height > 0


def test_a_rerun_resumes_at_the_first_unfinished_day(
    backfilled: tuple[Path, Path, dict[str, Any]], short_window: Path
) -> None:
    from flows.backfill import backfill

    tree, lake, _ = backfilled
    config = str(short_window)
    before = helpers.snapshot(lake)
    alerts_before = helpers.alerts(lake, DAYS[1])
    (lake / "_state" / "days" / f"{DAYS[1]}.json").unlink()  # as if killed during that day
    result = backfill(source=str(tree), lake=str(lake), start=DAYS[0], end=DAYS[-1],
                      config=config)  # fmt: skip
    assert [day["skipped"] for day in result["days"]] == [True, False, True]
    after = helpers.snapshot(lake)
    untouched = [name for name in before if DAYS[1] not in name]
    assert {n: after[n] for n in untouched} == {n: before[n] for n in untouched}
    assert_frame_equal(helpers.alerts(lake, DAYS[1]), alerts_before)

    forced = backfill(source=str(tree), lake=str(lake), start=DAYS[-1], end=DAYS[-1],
                      config=config, force=True)  # fmt: skip
    assert forced["days"][0]["skipped"] is False
