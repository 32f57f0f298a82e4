"""Cold start said out loud: each detector declares the history it needs, and detection lists
those the lake cannot yet satisfy, with the ingest that would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.config import Config
from analytics.detect.detectors import ALL_DETECTORS, RuleDetector, by_id
from analytics.detect.model import DETECTOR_ID
from analytics.detect.scoring import run
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests.ingest.helpers import run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "trail"
DAY = dt.date(2026, 11, 11)
HISTORY_NEEDING = {
    DETECTOR_ID: 7,
    "KMS.NewActorForKey": 14,
    "KMS.NewCrossAccountCaller": 7,
    "KMS.FailedDecryptBurst": 7,
    "KMS.BulkSecretDecryption": 7,
}


# The tests of this module share its module fixture (a two-day lake ingested): one xdist_group
# keeps them on one worker, which builds it once (--dist loadgroup schedules ungrouped tests one
# by one, on either worker).
pytestmark = pytest.mark.xdist_group("warming-up")


@pytest.fixture(scope="module")
def one_day_lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    """The sample trail's 2026-11-10 and 2026-11-11: one day of history before DAY."""
    lake = LocalLake(tmp_path_factory.mktemp("one-day") / "lake")
    selection = Selection(DAY - dt.timedelta(days=1), DAY)
    ingest(LocalSource(SAMPLES), lake, IngestOptions(workers=1, selection=selection))
    return lake


def test_every_detector_declares_the_history_it_needs() -> None:
    declared = {d.id: d.history_days_needed for d in ALL_DETECTORS if d.history_days_needed}
    assert declared == {k: v for k, v in HISTORY_NEEDING.items() if k != DETECTOR_ID}
    assert Config().model.min_history_days == HISTORY_NEEDING[DETECTOR_ID]


def test_a_warmup_setting_and_the_declared_history_cannot_disagree() -> None:
    new_actor = by_id("KMS.NewActorForKey")
    with pytest.raises(ValueError, match="differs from its warmup_days default"):
        dataclasses.replace(new_actor, history_days_needed=3)
    assert new_actor.needed_days({"warmup_days": 21}) == 21
    assert new_actor.needed_days({}) == 14


def test_negative_history_is_refused() -> None:
    rotation = by_id("KMS.RotationDisabled")
    with pytest.raises(ValueError, match="must not be negative"):
        dataclasses.replace(rotation, history_days_needed=-1)
    assert isinstance(rotation, RuleDetector)


def test_a_one_day_lake_lists_the_detectors_warming_up(one_day_lake: LocalLake) -> None:
    summary = run(one_day_lake, DAY, dry_run=True).summary
    assert summary["history_days"] == 1
    warming = {entry["id"]: entry for entry in summary["warming_up"]}
    assert set(warming) == set(HISTORY_NEEDING)
    for detector_id, needed in HISTORY_NEEDING.items():
        entry = warming[detector_id]
        assert entry["history_days"] == 1
        assert entry["needed_days"] == needed
        start = DAY - dt.timedelta(days=needed)
        assert entry["backfill"] == (
            f"keytrail ingest SOURCE --lake {one_day_lake.root} "
            f"--start {start.isoformat()} --end 2026-11-10"
        )


def test_configured_warmup_and_disabled_detectors_are_followed(one_day_lake: LocalLake) -> None:
    config = Config(
        detectors={"KMS.NewActorForKey": {"warmup_days": 1}},
        disabled_detectors=("KMS.NewCrossAccountCaller", DETECTOR_ID),
    )
    summary = run(one_day_lake, DAY, config, dry_run=True).summary
    ids = {entry["id"] for entry in summary["warming_up"]}
    assert ids == {"KMS.FailedDecryptBurst", "KMS.BulkSecretDecryption"}


def test_a_full_window_warms_nothing_up(lake_copy: LocalLake) -> None:
    last = dt.date(2026, 11, 14)
    config = Config(baseline_window_days=13, detectors={"KMS.NewActorForKey": {"warmup_days": 13}})
    summary = run(lake_copy, last, config, dry_run=True).summary
    assert summary["history_days"] == 13
    assert summary["warming_up"] == []


def test_the_backfill_starts_at_the_first_missing_day(lake_copy: LocalLake) -> None:
    day = dt.date(2026, 11, 14)
    for gone in (dt.date(2026, 11, 5), dt.date(2026, 11, 6)):
        for path in lake_copy.partition_files(gone):
            path.unlink()
    config = Config(detectors={"KMS.NewActorForKey": {"warmup_days": 13}})
    summary = run(lake_copy, day, config, dry_run=True).summary
    assert summary["history_days"] == 11
    warming = {entry["id"]: entry for entry in summary["warming_up"]}
    assert set(warming) == {"KMS.NewActorForKey"}
    assert warming["KMS.NewActorForKey"]["needed_days"] == 13
    assert "--start 2026-11-05 --end 2026-11-13" in warming["KMS.NewActorForKey"]["backfill"]


def test_a_day_without_kms_calls_is_still_history(lake_copy: LocalLake) -> None:
    # Event partitions count, not only days with KMS calls: a quiet day is still a day seen.
    quiet = dt.date(2026, 11, 6)
    files = lake_copy.partition_files(quiet)
    events = pl.read_parquet(files, hive_partitioning=False)
    others = events.filter(pl.col(s.EVENT_SOURCE) != "kms.amazonaws.com")
    assert 0 < others.height < events.height
    for path in files[1:]:
        path.unlink()
    pq.write_table(others.to_arrow().cast(s.EVENT_FILE_SCHEMA), files[0])  # as ingest writes it
    summary = run(lake_copy, dt.date(2026, 11, 8), dry_run=True).summary
    assert summary["history_days"] == 7
    assert DETECTOR_ID not in {entry["id"] for entry in summary["warming_up"]}
    assert summary["model_note"] is None or "day(s) of history" not in summary["model_note"]


def test_detect_prints_one_line_per_detector_warming_up(one_day_lake: LocalLake) -> None:
    lake = str(one_day_lake.root)
    result = run_cli("detect", "--lake", lake, "--date", DAY.isoformat(), "--dry-run")
    lines = [line for line in result.stdout.splitlines() if line.startswith("warming up:")]
    assert len(lines) == len(HISTORY_NEEDING)
    assert (
        "warming up: KMS.NewActorForKey has 1 of 14 day(s) of history; backfill: keytrail "
        f"ingest SOURCE --lake {lake} --start 2026-10-28 --end 2026-11-10"
    ) in lines
    as_json = run_cli("detect", "--lake", lake, "--date", DAY.isoformat(), "--dry-run", "--json")
    summary = json.loads(as_json.stdout)
    assert {entry["id"] for entry in summary["warming_up"]} == set(HISTORY_NEEDING)


def test_the_days_report_says_which_detectors_are_warming_up(
    one_day_lake: LocalLake, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(one_day_lake.root, lake)
    expected = run(LocalLake(lake), DAY, dry_run=True).summary["warming_up"]
    assert {w["id"] for w in expected} == set(HISTORY_NEEDING)
    run_cli("report", "--lake", str(lake), "--date", DAY.isoformat())
    folder = lake / "reports" / DAY.isoformat()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["warming_up"] == expected  # the lake named as the user typed it
    markdown = (folder / "report.md").read_text()
    page = (folder / "report.html").read_text()
    assert "## Detectors warming up" in markdown and 'id="warming-up"' in page
    for warming in expected:
        assert warming["id"] in markdown and warming["id"] in page
        assert f"1 of {warming['needed_days']} day(s)" in markdown
        assert "keytrail ingest SOURCE --lake" in markdown
