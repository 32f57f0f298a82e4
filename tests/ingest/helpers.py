"""Helpers for ingest tests: run the CLI as a user would, and read the lake back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl

from analytics.lake import schema as s
from tests.hive import read_table

KEYTRAIL = [sys.executable, "-m", "flows"]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*KEYTRAIL, *args], capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"keytrail {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def ingest_json(*args: str) -> dict[str, Any]:
    result = run_cli("ingest", *args, "--json")
    return dict(json.loads(result.stdout))


def lake_events(lake: Path) -> pl.DataFrame:
    """Every event row in the lake, sorted, as an analyst reading the Parquet files would see it."""
    files = sorted((lake / "events").glob("event_date=*/*.parquet"))
    if not files:
        return pl.DataFrame(schema=pl.Schema(pl.from_arrow(s.EVENT_SCHEMA.empty_table()).schema))
    return read_table(lake / "events", s.EVENT_COLUMNS).sort(s.EVENT_ID)


def event_ids(lake: Path) -> list[str]:
    return lake_events(lake).get_column(s.EVENT_ID).to_list()
