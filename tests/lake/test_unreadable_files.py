"""A stray or corrupt ``.parquet`` in an events partition is skipped with a note, never a crash.

Every reader of event files lists them through ``LocalLake.partition_files``, which reads each
file's footer once and leaves out what is not Parquet in the event schema.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analytics import api
from analytics.adapters.lake import LocalLake, event_file_problem
from flows.cli import app
from tests.lake.conftest import LAST_DAY

JUNK = "junk.parquet"


def _plant_junk(lake: LocalLake, day: str = LAST_DAY) -> Path:
    path = lake.root / "events" / f"event_date={day}" / JUNK
    path.write_bytes(os.urandom(4096))
    return path


def _plant_wrong_schema(lake: LocalLake, day: str = LAST_DAY) -> Path:
    path = lake.root / "events" / f"event_date={day}" / JUNK
    pq.write_table(pa.table({"event_id": ["x"], "colour": ["blue"]}), path)
    return path


PLANTERS = {"random bytes": _plant_junk, "wrong schema": _plant_wrong_schema}


def _keytrail(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.mark.parametrize("plant", PLANTERS.values(), ids=PLANTERS.keys())
def test_detect_report_and_export_skip_an_unusable_event_file(
    lake_copy: LocalLake, plant: object
) -> None:
    assert callable(plant)
    plant(lake_copy)
    code, out, err = _keytrail("detect", "--lake", lake_copy.root, "--date", LAST_DAY, "--json")
    assert code == 0, err
    skipped = json.loads(out)["skipped_files"]
    assert list(skipped) == [f"events/event_date={LAST_DAY}/{JUNK}"]
    assert f"skipped {lake_copy.root}/events/event_date={LAST_DAY}/{JUNK}" in err
    code, _, err = _keytrail("report", "--lake", lake_copy.root, "--date", LAST_DAY, "--json")
    assert code == 0, err
    assert JUNK in err
    code, _, err = _keytrail(
        "export", "--lake", lake_copy.root, "--date", LAST_DAY, "--sink", "ocsf-file"
    )
    assert code == 0, err


def test_the_skipped_file_says_why(lake_copy: LocalLake) -> None:
    junk = _plant_junk(lake_copy)
    problem = event_file_problem(junk)
    assert problem is not None and problem.startswith("not a readable Parquet file")
    wrong = _plant_wrong_schema(lake_copy, "2026-11-13")
    problem = event_file_problem(wrong)
    assert problem is not None and "missing column(s)" in problem and "colour" in problem


def test_the_events_beside_a_bad_file_are_all_read(
    lake_copy: LocalLake, sample_lake: LocalLake
) -> None:
    _plant_junk(lake_copy)
    before = api.scan_events(api.open_lake(sample_lake.root)).select(pl.len()).collect().item()
    lake = api.open_lake(lake_copy.root)
    assert api.scan_events(lake).select(pl.len()).collect().item() == before
    assert list(lake.local.skipped_files()) == [f"events/event_date={LAST_DAY}/{JUNK}"]


def test_a_repaired_file_is_read_again(lake_copy: LocalLake) -> None:
    """The footer verdict is remembered per path, mtime and size: a fixed file is noticed."""
    junk = _plant_junk(lake_copy)
    assert event_file_problem(junk) is not None
    good = lake_copy.partition_files(pl.Series([LAST_DAY]).str.to_date().item())[0]
    junk.write_bytes(good.read_bytes())
    assert event_file_problem(junk) is None


def test_a_corrupt_feature_file_is_computed_again(lake_copy: LocalLake) -> None:
    code, _, err = _keytrail("detect", "--lake", lake_copy.root, "--date", LAST_DAY)
    assert code == 0, err
    features = (
        lake_copy.root / "features" / "hourly" / f"event_date={LAST_DAY}" / "features.parquet"
    )
    features.write_bytes(os.urandom(512))
    code, out, err = _keytrail("detect", "--lake", lake_copy.root, "--date", LAST_DAY, "--json")
    assert code == 0, err
    assert json.loads(out)["feature_days_recomputed"] >= 1
    assert pq.read_table(features).num_rows > 0


def test_a_corrupt_alerts_file_is_skipped_by_the_readers_of_many_days(
    lake_copy: LocalLake,
) -> None:
    for day in ("2026-11-13", LAST_DAY):
        code, _, err = _keytrail("detect", "--lake", lake_copy.root, "--date", day)
        assert code == 0, err
    lake = api.open_lake(lake_copy.root)
    every = api.alerts(lake, include_suppressed=True)
    broken = lake_copy.root / "alerts" / f"event_date={LAST_DAY}" / "alerts.parquet"
    broken.write_bytes(os.urandom(256))
    lake = api.open_lake(lake_copy.root)
    kept = api.alerts(lake, include_suppressed=True)
    assert kept.height == every.filter(pl.col("event_date").cast(pl.String) != LAST_DAY).height
    assert list(lake.local.skipped_files()) == [f"alerts/event_date={LAST_DAY}/alerts.parquet"]
    from tests.lake.conftest import SAMPLES  # labels with scenarios: evaluate reads the alerts

    code, _, err = _keytrail(
        "evaluate", "--lake", lake_copy.root, "--labels", SAMPLES / "labels.json"
    )
    assert code == 0, err
    assert f"alerts/event_date={LAST_DAY}/alerts.parquet" in err


def test_ingest_rebuilds_an_unreadable_state_without_writing_an_event_twice(
    lake_copy: LocalLake, sample_lake: LocalLake
) -> None:
    from tests.lake.conftest import SAMPLES

    lake_copy.state_file.write_bytes(os.urandom(300))
    code, out, err = _keytrail(
        "ingest", SAMPLES, "--lake", lake_copy.root, "--workers", "1", "--json"
    )
    assert code == 0, err
    assert "skipped" in err and "_state/objects.parquet" in err
    summary = json.loads(out)
    assert summary["events_written"] == 0 and summary["duplicate_events_dropped"] > 0
    assert lake_copy.read_state().num_rows == sample_lake.read_state().num_rows
    events = pl.scan_parquet(str(lake_copy.events_dir / "*" / "*.parquet"))
    assert events.select(pl.len()).collect().item() == (
        pl.scan_parquet(str(sample_lake.events_dir / "*" / "*.parquet"))
        .select(pl.len())
        .collect()
        .item()
    )
