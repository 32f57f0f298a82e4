"""``keytrail lake check``: a clean lake exits 0; each kind of damage is found and named."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from typer.testing import CliRunner

from analytics.adapters.lake import EVENT_PARQUET_OPTIONS, LocalLake, with_partition_column
from analytics.lake import schema as s
from analytics.lake.check import FindingKind, check_lake
from flows.cli import app
from tests.lake.conftest import LAST_DAY

DAY = dt.date.fromisoformat(LAST_DAY)


def _check(lake: LocalLake) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["lake", "check", "--lake", str(lake.root), "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout else {}


def _kinds(found: dict[str, Any]) -> set[str]:
    return {f["kind"] for f in found["findings"]}


def test_a_clean_lake_exits_0(lake_copy: LocalLake, sample_lake: LocalLake) -> None:
    code, found = _check(lake_copy)
    assert code == 0, found
    assert found["clean"] is True and found["findings"] == []
    events = pl.scan_parquet(str(sample_lake.events_dir / "*" / "*.parquet"))
    assert found["events"] == events.select(pl.len()).collect().item()
    assert found["days"] == len(sample_lake.event_dates())


def test_an_event_stored_twice_in_one_day_is_found(lake_copy: LocalLake) -> None:
    source = lake_copy.partition_files(DAY)[0]
    pq.write_table(pq.read_table(source).slice(0, 3), source.with_name("copy.parquet"))
    code, found = _check(lake_copy)
    assert code == 1
    duplicates = [f for f in found["findings"] if f["kind"] == FindingKind.DUPLICATE_EVENT]
    assert len(duplicates) == 3 and found["finding_counts"] == {"duplicate_event": 3}
    assert all("copy.parquet" in f["detail"] for f in duplicates)


def test_an_event_stored_on_two_days_is_found_by_the_global_pass(lake_copy: LocalLake) -> None:
    earlier = DAY - dt.timedelta(days=1)
    table = pq.read_table(lake_copy.partition_files(earlier)[0]).slice(0, 1)
    target = lake_copy.partition_dir(DAY) / "moved.parquet"
    pq.write_table(table.cast(s.EVENT_FILE_SCHEMA), target, **EVENT_PARQUET_OPTIONS)
    report = check_lake(lake_copy)
    assert [f.kind for f in report.findings] == [FindingKind.DUPLICATE_EVENT]
    assert table.column(s.EVENT_ID)[0].as_py() in report.findings[0].detail
    assert "more than one day partition" in report.findings[0].detail


def test_a_junk_file_and_a_foreign_table_are_found(lake_copy: LocalLake) -> None:
    folder = lake_copy.partition_dir(DAY)
    (folder / "junk.parquet").write_bytes(os.urandom(2048))
    pq.write_table(pl.DataFrame({"colour": ["blue"]}).to_arrow(), folder / "other.parquet")
    code, found = _check(lake_copy)
    assert code == 1
    by_path = {f["path"]: f["kind"] for f in found["findings"]}
    assert by_path == {
        f"events/event_date={LAST_DAY}/junk.parquet": "unreadable_file",
        f"events/event_date={LAST_DAY}/other.parquet": "schema_mismatch",
    }


def test_a_deleted_event_file_is_found_through_the_state(lake_copy: LocalLake) -> None:
    for path in lake_copy.partition_files(DAY):
        path.unlink()
    code, found = _check(lake_copy)
    assert code == 1
    assert _kinds(found) == {"missing_events"}
    assert found["findings"][0]["path"] == f"events/event_date={LAST_DAY}"


def test_events_the_state_does_not_record_are_found(lake_copy: LocalLake) -> None:
    state = lake_copy.read_state()
    keep = pl.from_arrow(state)
    assert isinstance(keep, pl.DataFrame)
    lake_copy.write_state(keep.slice(1).to_arrow())
    found = check_lake(lake_copy)
    assert {f.kind for f in found.findings} == {FindingKind.UNRECORDED_EVENTS}


def test_badly_named_partitions_stray_and_misplaced_files_are_found(lake_copy: LocalLake) -> None:
    (lake_copy.events_dir / "event_date=yesterday").mkdir()
    (lake_copy.partition_dir(DAY) / "notes.txt").write_text("hello")
    # Only a file of the shape written before event_date left the files can say its rows
    # belong to another day than its folder's.
    source = lake_copy.partition_files(DAY - dt.timedelta(days=2))[0]
    misplaced = lake_copy.partition_dir(DAY) / "misplaced.parquet"
    old_shape = with_partition_column(pq.read_table(source), DAY - dt.timedelta(days=2),
                                      s.EVENT_SCHEMA)  # fmt: skip
    pq.write_table(old_shape, misplaced, **EVENT_PARQUET_OPTIONS)
    source.unlink()
    (lake_copy.partition_dir(DAY) / ".tmp-abc-part.parquet.partial").write_bytes(b"writing")
    found = check_lake(lake_copy)
    kinds = {f.kind for f in found.findings}
    assert {
        FindingKind.BAD_PARTITION,
        FindingKind.STRAY_FILE,
        FindingKind.MISPLACED_EVENTS,
    } <= kinds
    assert not any(".tmp-" in f.path for f in found.findings)


def test_quarantine_records_are_listed_with_counts(lake_copy: LocalLake) -> None:
    objects = lake_copy.quarantine_dir / "objects"
    objects.mkdir(parents=True)
    record = {"source_object": "AWSLogs/1/x.json.gz", "reason": "not gzip (first bytes 7b 22)"}
    (objects / "a.json").write_text(json.dumps(record))
    records = lake_copy.quarantine_dir / "records"
    records.mkdir()
    (records / "b.jsonl").write_text('{"index": 1}\n{"index": 4}\n')
    code, found = _check(lake_copy)
    assert code == 0
    assert found["quarantine"]["objects"] == 1 and found["quarantine"]["records"] == 2
    assert found["quarantine"]["quarantined_objects"] == [record]


def test_a_missing_lake_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lake", "check", "--lake", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_the_plain_output_lists_each_finding(lake_copy: LocalLake) -> None:
    (lake_copy.partition_dir(DAY) / "junk.parquet").write_bytes(os.urandom(64))
    result = CliRunner().invoke(app, ["lake", "check", "--lake", str(lake_copy.root)])
    assert result.exit_code == 1
    assert "unreadable_file" in result.stdout and "junk.parquet" in result.stdout


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["lake", "check", "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and "keytrail lake check --lake" in result.output
    group = CliRunner().invoke(app, ["--help"])
    assert "lake" in group.output


def test_an_unreadable_state_file_is_found(lake_copy: LocalLake) -> None:
    lake_copy.state_file.write_bytes(os.urandom(100))
    found = check_lake(lake_copy)
    assert [(f.kind, f.path) for f in found.findings] == [
        (FindingKind.UNREADABLE_STATE, "_state/objects.parquet")
    ]
