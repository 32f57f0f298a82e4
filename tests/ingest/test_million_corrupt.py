"""A million events with bad objects, bad records and a duplicate delivery: one row per eventID.

The expected set of eventIDs is computed independently of keytrail's parser — stdlib gzip and
json over every object the labels do not mark as unreadable — and compared with the lake.
"""

from __future__ import annotations

import gzip
import json
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from analytics.ingest.layout import Kind, classify
from analytics.lake import schema as s
from tests.ingest.helpers import ingest_json, run_cli

EVENTS = 1_000_000
DAYS = 10


def _readable_ids(path: str) -> list[str]:
    """eventIDs of the records of one object that carry both eventID and eventTime."""
    try:
        text = gzip.decompress(Path(path).read_bytes()).decode("utf-8", errors="replace")
        records = json.loads(text)["Records"]
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError):
        return []
    return [r["eventID"] for r in records
            if isinstance(r, dict) and r.get("eventID") and r.get("eventTime")]  # fmt: skip


@pytest.mark.slow
def test_a_million_events_with_corruption_land_exactly_once(tmp_path: Path) -> None:
    tree, lake = tmp_path / "trail", tmp_path / "lake"
    run_cli("generate", str(tree), "--days", str(DAYS), "--events-per-day", str(EVENTS // DAYS),
            "--seed", "101", "--corrupt")  # fmt: skip
    labels = json.loads((tree / "labels.json").read_text())
    unreadable = {c["key"] for c in labels["corrupt_objects"] if c.get("quarantine")}
    logs = [p for p in tree.rglob("*.json.gz")
            if classify(p.relative_to(tree).as_posix())[0] is Kind.LOG]  # fmt: skip
    readable = [str(p) for p in logs if p.relative_to(tree).as_posix() not in unreadable]
    with ProcessPoolExecutor(2) as pool:
        expected = {i for ids in pool.map(_readable_ids, readable, chunksize=64) for i in ids}

    summary = ingest_json(str(tree), "--lake", str(lake))

    assert summary["objects_quarantined"] == len(unreadable)
    refused = [b for b in labels["bad_records"] if b["defect"].startswith("missing_")]
    assert summary["records_quarantined"] == len(refused)
    assert summary["objects_with_notes"] == 1  # the invalid UTF-8 one: repaired and kept
    files = sorted(lake.glob("events/event_date=*/*.parquet"))
    ids = pl.read_parquet(files, columns=[s.EVENT_ID]).get_column(s.EVENT_ID)
    assert ids.len() == ids.n_unique(), "an eventID appears twice in the lake"
    assert set(ids.to_list()) == expected
    assert len(expected) >= 0.95 * EVENTS
    assert summary["events_written"] == len(expected)
    assert summary["duplicate_events_dropped"] > 0  # the duplicate delivery
