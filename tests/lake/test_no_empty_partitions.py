"""No partition holds a zero-row file: not for days before the first event a baseline window
reaches back to, not for scored days without alerts, incidents or history rows. That a day was
scored is recorded in ``_state/scored/``, a history table's empty day in ``_state/history/``:
that is what tells a quiet day from one never computed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from analytics import api
from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect import features
from analytics.detect import scoring as detect
from analytics.detect.baselines import window
from analytics.detect.detectors.registry import ALL_DETECTORS
from analytics.detect.model import DETECTOR_ID
from flows.cli import app
from tests.lake.conftest import LAST_DAY

DAY = dt.date.fromisoformat(LAST_DAY)


def _empty_files(lake: LocalLake) -> list[str]:
    return sorted(
        path.relative_to(lake.root).as_posix()
        for table in ("events", "features", "history", "alerts", "incidents")
        for path in (lake.root / table).rglob("*.parquet")
        if pq.read_metadata(path).num_rows == 0
    )


def _scored(lake: LocalLake, day: dt.date) -> dict[str, object]:
    record: dict[str, object] = json.loads(detect.scored_path(lake, day).read_text())
    return record


def test_a_35_day_window_over_a_14_day_lake_writes_no_empty_file(lake_copy: LocalLake) -> None:
    first = lake_copy.event_dates()[0]
    start, _ = window(DAY, 35)
    assert start < first  # the window reaches back before the lake's first day
    days = [start + dt.timedelta(days=i) for i in range((DAY - start).days + 1)]
    features.ensure_days(lake_copy, days)
    scored = [first, DAY - dt.timedelta(days=1), DAY]
    results = {day: detect.run(lake_copy, day) for day in scored}
    quiet = [day for day, result in results.items() if result.alerts.height == 0]
    assert quiet, "the sample lake should have a scored day without alerts"

    assert _empty_files(lake_copy) == []
    featured = sorted(p.parent.name for p in (lake_copy.root / "features").rglob("*.parquet"))
    assert featured == [f"event_date={d}" for d in lake_copy.event_dates()]
    for day in quiet:
        assert not Path(detect.alerts_path(lake_copy, day)).exists()
        assert _scored(lake_copy, day) == {"day": day.isoformat(), "alerts": 0, "incidents": 0}
    assert api.open_lake(lake_copy.root).alert_dates() == scored
    # A history table without rows on a scored day is a stamp in _state/, not an empty file.
    stamps = sorted((lake_copy.root / "_state" / "history").rglob("*.stamp"))
    assert stamps, "the sample lake should have a day without rows in some history table"
    for stamp in stamps:
        day = stamp.stem
        assert not (lake_copy.root / "history" / stamp.parent.name / f"event_date={day}").exists()
    assert [detect.was_scored(lake_copy, d) for d in (start, first)] == [False, True]


def test_a_rerun_that_finds_nothing_removes_the_days_files(lake_copy: LocalLake) -> None:
    found = detect.run(lake_copy, DAY)
    assert found.alerts.height and found.incidents.height
    assert Path(detect.incidents_path(lake_copy, DAY)).exists()
    silent = dataclasses.replace(
        Config(),
        disabled_detectors=(*(d.id for d in ALL_DETECTORS), DETECTOR_ID),
    )
    assert detect.run(lake_copy, DAY, silent).alerts.height == 0
    for path in (detect.alerts_path(lake_copy, DAY), detect.incidents_path(lake_copy, DAY)):
        assert not Path(path).exists() and not Path(path).parent.exists()
    assert _scored(lake_copy, DAY)["alerts"] == 0
    assert api.alerts(api.open_lake(lake_copy.root), include_suppressed=True).height == 0
    # export takes a quiet scored day as nothing to send, not as a day never scored
    out = lake_copy.root.parent / "out.jsonl"
    result = CliRunner().invoke(
        app, ["export", "--lake", str(lake_copy.root), "--date", LAST_DAY, "--sink", "ocsf-file",
              "--output", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_a_day_scored_before_the_records_counts_by_its_alerts_file(lake_copy: LocalLake) -> None:
    detect.run(lake_copy, DAY)
    detect.scored_path(lake_copy, DAY).unlink()
    assert detect.was_scored(lake_copy, DAY)
    assert api.open_lake(lake_copy.root).alert_dates() == [DAY]
