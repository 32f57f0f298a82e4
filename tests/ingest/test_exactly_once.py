"""Exactly once: reruns, overlaps, duplicate deliveries and SIGKILL leave one clean run's rows."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.lake import schema as s
from tests import trail
from tests.ingest.helpers import KEYTRAIL, ingest_json, lake_events


def _tree(root: Path, days: int = 3, files_per_day: int = 4, per_file: int = 30) -> None:
    trail.write_tree(
        root, trail.small_trail(days=days, per_file=per_file, files_per_day=files_per_day)
    )


def _clean_run(tree: Path, tmp_path: Path, *extra: str) -> pl.DataFrame:
    lake = tmp_path / "clean-lake"
    ingest_json(str(tree), "--lake", str(lake), *extra)
    return lake_events(lake)


@pytest.mark.usefixtures("decoder")
def test_rerun_adds_nothing(tmp_path: Path) -> None:
    tree = tmp_path / "trail"
    _tree(tree)
    lake = str(tmp_path / "lake")
    first = ingest_json(str(tree), "--lake", lake)
    assert first["events_written"] == 3 * 4 * 30
    second = ingest_json(str(tree), "--lake", lake)
    assert (second["objects_skipped"], second["events_written"]) == (12, 0)
    assert_frame_equal(lake_events(tmp_path / "lake"), _clean_run(tree, tmp_path))


def test_overlapping_date_ranges_equal_one_clean_run(tmp_path: Path) -> None:
    tree = tmp_path / "trail"
    _tree(tree, days=4)
    lake = str(tmp_path / "lake")
    ingest_json(str(tree), "--lake", lake, "--start", "2026-11-02", "--end", "2026-11-03")
    overlap = ingest_json(str(tree), "--lake", lake, "--start", "2026-11-03", "--end", "2026-11-05")
    assert overlap["events_written"] == 2 * 120
    clean = _clean_run(tree, tmp_path)
    assert_frame_equal(lake_events(tmp_path / "lake"), clean)
    assert clean.height == 4 * 120


def test_narrow_run_then_wider_run_fills_in_what_was_left_out(tmp_path: Path) -> None:
    tree = tmp_path / "trail"
    _tree(tree, days=2)
    lake = str(tmp_path / "lake")
    ingest_json(str(tree), "--lake", lake, "--start", "2026-11-03", "--end", "2026-11-03")
    # Nov 2's last file was delivered on Nov 3 and was read, but only Nov 3's events kept;
    # an open-ended run must go back for the Nov 2 events in it.
    wider = ingest_json(str(tree), "--lake", lake)
    assert wider["events_written"] == 120
    assert_frame_equal(lake_events(tmp_path / "lake"), _clean_run(tree, tmp_path))


def test_same_events_under_another_object_name_are_not_counted_twice(tmp_path: Path) -> None:
    tree = tmp_path / "trail"
    objects = trail.small_trail(days=1, files_per_day=2)
    trail.write_tree(tree, objects)
    lake = str(tmp_path / "lake")
    ingest_json(str(tree), "--lake", lake)
    key = next(k for k in objects if "_D0F0" in k)
    data = objects[key]
    redelivered = key.replace("D0F0000000000000", "REDELIVERED00000")
    trail.write_tree(tree, {redelivered: data})
    again = ingest_json(str(tree), "--lake", lake)
    assert again["objects_ingested"] == 1
    assert (again["events_written"], again["duplicate_events_dropped"]) == (0, 40)
    frame = lake_events(tmp_path / "lake")
    assert frame.height == frame.get_column(s.EVENT_ID).n_unique() == 80


@pytest.mark.usefixtures("decoder")
def test_duplicate_records_inside_one_run_are_dropped(tmp_path: Path) -> None:
    records = [
        trail.kms_record(seed="same"),
        trail.kms_record(seed="same"),
        trail.kms_record(seed="other"),
    ]
    t0 = dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.UTC)
    trail.write_tree(tmp_path / "trail", {trail.log_key(t0, "A"): trail.gz(records),
                                          trail.log_key(t0, "B"): trail.gz(records[:1])})  # fmt: skip
    summary = ingest_json(str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"))
    assert (summary["events_written"], summary["duplicate_events_dropped"]) == (2, 2)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_files", [1, 3])
@pytest.mark.usefixtures("decoder")
def test_sigkill_mid_ingest_then_rerun_equals_a_clean_run(
    tmp_path: Path, kill_after_files: int
) -> None:
    tree = tmp_path / "trail"
    _tree(tree, days=6, files_per_day=20, per_file=150)  # 18,000 events in 120 objects
    lake = tmp_path / "lake"
    args = [*KEYTRAIL, "ingest", str(tree), "--lake", str(lake), "--workers", "2",
            "--checkpoint-events", "1500", "--chunk-kb", "64", "--json"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(lake.glob("events/*/*.parquet"))) >= kill_after_files:
            break
        time.sleep(0.005)
    assert process.poll() is None, "ingest finished before it could be killed; grow the tree"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = lake_events(lake).height
    assert partial < 18_000
    rerun = ingest_json(str(tree), "--lake", str(lake))
    assert rerun["objects_skipped"] + rerun["objects_ingested"] == 120
    assert_frame_equal(lake_events(lake), _clean_run(tree, tmp_path))
    assert not list(lake.rglob(".tmp-*"))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("limit", ["flush_events", "flush_bytes", "checkpoint_events"])
def test_buffer_sizes_change_files_not_rows(tmp_path: Path, limit: str, workers: int) -> None:
    """Flushing after every chunk (by events or by bytes) or checkpointing after every chunk
    writes more, smaller files, and exactly the rows of a run with the default buffers — read
    in this thread, or on two read threads staging in memory while the merge's own thread
    writes the row groups."""
    from analytics.adapters.lake import LocalLake
    from analytics.adapters.sources import LocalSource
    from analytics.ingest.pipeline import IngestOptions, ingest

    tree = tmp_path / "trail"
    _tree(tree, days=2, files_per_day=6)
    limits = (
        {"flush_events": 1, "checkpoint_events": 1} if limit == "checkpoint_events" else {limit: 1}
    )
    options = IngestOptions(workers=workers, chunk_bytes=1, piece_bytes=1, **limits)
    summary = ingest(LocalSource(tree), LocalLake(tmp_path / "lake"), options)
    assert summary.events_written == 2 * 6 * 30
    day_files = list((tmp_path / "lake" / "events").glob("event_date=2026-11-02/*.parquet"))
    clean = _clean_run(tree, tmp_path)
    assert_frame_equal(lake_events(tmp_path / "lake"), clean)
    clean_files = list((tmp_path / "clean-lake" / "events").glob("event_date=2026-11-02/*.parquet"))
    import pyarrow.parquet as pq

    def pieces(files: list[Path]) -> int:  # a flush writes a row group, a checkpoint a file
        return sum(pq.ParquetFile(f).num_row_groups for f in files)

    assert pieces(day_files) > pieces(clean_files) == 1
    if limit == "checkpoint_events":
        assert len(day_files) > len(clean_files)


def test_a_day_of_a_few_late_events_is_not_cut_into_tiny_row_groups(tmp_path: Path) -> None:
    """The open days' buffers share one bound; past it the largest are written first, so the
    two late events of the day before that each object brings gather into one row group, where
    flushing every day at once wrote a row group of two rows each time."""
    import pyarrow.parquet as pq

    from analytics.adapters.lake import LocalLake
    from analytics.adapters.sources import LocalSource
    from analytics.ingest.pipeline import IngestOptions, ingest

    late = trail.day_of_records(dt.date(2026, 11, 2), 16, prefix="late")
    days = [trail.day_of_records(dt.date(2026, 11, d), 8 * 12, prefix="now") for d in (3, 4)]
    objects = {}
    for f in range(8):  # each object: 2 late events, 12 of each of two days (no day reaches 50)
        delivered = dt.datetime(2026, 11, 3, 1 + f, tzinfo=dt.UTC)
        records = late[2 * f : 2 * f + 2] + [r for d in days for r in d[12 * f : 12 * (f + 1)]]
        objects[trail.log_key(delivered, f"F{f}")] = trail.gz(records)
    tree = tmp_path / "trail"
    trail.write_tree(tree, objects)
    options = IngestOptions(workers=1, chunk_bytes=1, piece_bytes=1, flush_events=50)
    summary = ingest(LocalSource(tree), LocalLake(tmp_path / "lake"), options)
    assert summary.events_written == 16 + 2 * 96

    def row_groups(day: str) -> list[int]:
        files = sorted((tmp_path / "lake" / "events").glob(f"event_date={day}/*.parquet"))
        return [pq.ParquetFile(f).metadata.row_group(i).num_rows
                for f in files for i in range(pq.ParquetFile(f).num_row_groups)]  # fmt: skip

    assert row_groups("2026-11-02") == [16]
    for day in ("2026-11-03", "2026-11-04"):  # the bound still holds: written as it fills
        assert sum(row_groups(day)) == 96 and len(row_groups(day)) > 1
    assert_frame_equal(lake_events(tmp_path / "lake"), _clean_run(tree, tmp_path))


def test_tables_staged_in_memory_are_handed_over_once_and_dropped_with_their_run() -> None:
    import pyarrow as pa

    from analytics.ingest.staging import StagingArea

    run, other = StagingArea.in_memory("run-a"), StagingArea.in_memory("run-b")
    table = pa.table({"event_id": ["a", "b"]})
    first = run.write_table("000001-p/2026-11-02.arrow", table)
    kept = other.write_table("000001-p/2026-11-02.arrow", table)
    assert first != kept
    assert run.read_table(first) is table  # handed over as it is, not copied
    with pytest.raises(KeyError):
        run.read_table(first)  # and forgotten: the merge holds what it keeps
    second = run.write_table("000002-p/2026-11-02.arrow", table)
    run.remove()
    with pytest.raises(KeyError):
        run.read_table(second)
    assert other.read_table(kept) is table  # another run's tables are not touched


def test_a_failed_threaded_ingest_leaves_no_table_staged_in_memory(tmp_path: Path) -> None:
    """When the run fails while read threads are busy, the reads are stopped before the staged
    tables are dropped: none outlives the run in the process (a notebook, a long-lived flow)."""
    from analytics.adapters.lake import LocalLake
    from analytics.adapters.sources import LocalSource
    from analytics.ingest import staging
    from analytics.ingest.pipeline import IngestOptions, Progress, ingest

    tree = tmp_path / "trail"
    _tree(tree, days=2, files_per_day=6)

    def fail_after_the_first_partition(progress: Progress) -> None:
        if progress.objects_done:
            raise RuntimeError("stop")

    options = IngestOptions(workers=2, chunk_bytes=1, piece_bytes=1)
    with pytest.raises(RuntimeError, match="stop"):
        ingest(LocalSource(tree), LocalLake(tmp_path / "lake"), options,
               progress=fail_after_the_first_partition)  # fmt: skip
    assert not staging._IN_MEMORY
    assert not lake_events(tmp_path / "lake").height


def test_read_threads_pausing_the_collector_leave_it_off_until_the_last_is_done() -> None:
    import gc
    import threading

    from analytics.ingest.pipeline import _gc_paused

    assert gc.isenabled()
    second_inside, first_left = threading.Event(), threading.Event()
    seen_by_second: list[bool] = []

    def second() -> None:
        with _gc_paused():
            second_inside.set()
            first_left.wait()
            seen_by_second.append(gc.isenabled())

    with _gc_paused():
        worker = threading.Thread(target=second)
        worker.start()
        second_inside.wait()
    first_left.set()
    worker.join()
    assert seen_by_second == [False]  # the first thread's pause ended, the second's had not
    assert gc.isenabled()  # back as it was, once the last pause ended


def test_the_cli_ingest_hands_what_it_set_apart_back_to_the_collector(tmp_path: Path) -> None:
    # keytrail ingest freezes what is loaded before its run (the collector skips it while the
    # run allocates); in a process that goes on afterwards (here, the test's), it is unfrozen.
    import gc

    from typer.testing import CliRunner

    from flows.cli import app

    tree = tmp_path / "trail"
    t0 = dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.UTC)
    trail.write_tree(tree, {trail.log_key(t0, "A"): trail.gz([trail.kms_record(seed="f1")])})
    assert gc.get_freeze_count() == 0
    result = CliRunner().invoke(app, ["ingest", str(tree), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert lake_events(tmp_path / "lake").height == 1
    assert gc.get_freeze_count() == 0
