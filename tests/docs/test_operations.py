"""docs/operations.md works as written: its marked blocks run in order against the sample trail.

The trail is a copy of the embedded sample with one log object cut short, so the quarantine
section has something to show and the "forget and read again" recipe has something to re-read.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.docs.shell_blocks import blocks, explain, run_blocks

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations.md"
SAMPLES = REPO / "data" / "samples" / "trail"
BROKEN = (
    "AWSLogs/773531725586/CloudTrail/eu-west-1/2026/11/14/"
    "773531725586_CloudTrail_eu-west-1_20261114T2359Z_TruncatedForTest0.json.gz"
)


def trail_with_a_broken_object(target: Path) -> Path:
    shutil.copytree(SAMPLES, target, ignore=shutil.ignore_patterns("CloudTrail-Digest"))
    records = {"Records": [{"eventID": f"broken-{i}", "eventTime": "2026-11-14T23:58:00Z",
                            "eventSource": "kms.amazonaws.com", "eventName": "Decrypt"}
                           for i in range(50)]}  # fmt: skip
    whole = gzip.compress(json.dumps(records).encode())
    (target / BROKEN).write_bytes(whole[: len(whole) // 2])
    return target


def test_the_doc_marks_every_section_for_testing() -> None:
    text = "\n".join(body for _, body in blocks(DOC.read_text(encoding="utf-8"), ("test",)))
    for command in ("keytrail ingest", "keytrail detect", "keytrail report", "keytrail export",
                    "--dry-run", "write_state"):  # fmt: skip
        assert command in text


@pytest.mark.slow
def test_operations_recipes_work(tmp_path: Path) -> None:
    trail = trail_with_a_broken_object(tmp_path / "trail")
    lake = tmp_path / "lake"
    env = {
        "TRAIL": str(trail),
        "LAKE": str(lake),
        "CONFIG": str(REPO / "docs" / "keytrail.example.toml"),
        "DAY": "2026-11-14",
        "START": "2026-11-12",
        "END": "2026-11-14",
        "PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    result = run_blocks(DOC, ("test",), cwd=tmp_path, env=env)
    assert result.returncode == 0, explain(result)
    out = result.stdout
    # the nightly run and the backfill scored and reported the days
    for day in ("2026-11-12", "2026-11-13", "2026-11-14"):
        assert (lake / "alerts" / f"event_date={day}" / "alerts.parquet").is_file()
    assert (lake / "reports" / "2026-11-14" / "report.html").is_file()
    assert (lake / "ocsf" / "event_date=2026-11-14" / "alerts.ocsf.jsonl").is_file()
    assert "would raise" in out  # the dry run
    assert "already sent" in out  # the rerun's export sent nothing twice
    # the quarantine listing names the broken object and why
    assert f"{BROKEN}: truncated gzip" in out
    assert "the lake forgot 1 quarantined object(s)" in out
    state = pl.read_parquet(lake / "_state" / "objects.parquet")
    again = state.filter(pl.col("object_key") == BROKEN).row(0, named=True)
    assert again["status"] == "quarantined"  # read again after being forgotten
    events = pl.read_parquet(lake / "events" / "**" / "*.parquet", hive_partitioning=True)
    assert events.get_column("event_id").is_unique().all()
    days = {d.isoformat() for d in events.get_column("event_date").unique().to_list()}
    assert days == {"2026-11-12", "2026-11-13", "2026-11-14"}  # only what was asked for
