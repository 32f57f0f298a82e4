"""Read two lakes back the way a user would and compare them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import typer
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.adapters.lake import LocalLake
from analytics.detect.scoring import read_alerts
from analytics.lake import schema as s


def events(lake: Path) -> pl.DataFrame:
    files = sorted((lake / "events").glob("event_date=*/*.parquet"))
    return pl.read_parquet(files, hive_partitioning=False).sort(s.EVENT_ID)


def state(lake: Path) -> pl.DataFrame:
    """Object state without the time each object was read."""
    frame = pl.read_parquet(lake / "_state" / "objects.parquet")
    return frame.drop(s.OBJ_INGESTED_AT).sort(s.OBJ_KEY)


def alerts(lake: Path, day: str) -> pl.DataFrame:
    """The day's alerts as stored (none for a day scored without alerts: it has no file)."""
    return read_alerts(LocalLake(lake), dt.date.fromisoformat(day))


def quarantine(lake: Path) -> dict[str, Any]:
    found = {}
    for path in sorted((lake / "quarantine").rglob("*.json")):
        record = json.loads(path.read_text())
        record.pop("quarantined_at", None)
        found[path.name] = record
    return found


def assert_same_lake(left: Path, right: Path, days: list[str]) -> None:
    """Events row for row, object state, quarantine, and each day's alerts."""
    assert_frame_equal(events(left), events(right))
    assert_frame_equal(state(left), state(right))
    assert quarantine(left) == quarantine(right)
    for day in days:
        assert_frame_equal(alerts(left, day), alerts(right, day))


def snapshot(lake: Path) -> dict[str, str]:
    """Every file of a lake by content hash (and mtime, so a rewrite with equal bytes shows)."""
    return {
        str(path.relative_to(lake)): hashlib.sha256(path.read_bytes()).hexdigest()
        + f"@{path.stat().st_mtime_ns}"
        for path in sorted(lake.rglob("*"))
        if path.is_file()
    }


def keytrail() -> typer.Typer:
    """The keytrail app with ``run`` and ``serve`` (registered here until flows.cli does it)."""
    from flows import cli
    from flows.cli_orchestrate import register

    if any(command.name == "run" for command in cli.app.registered_commands):
        return cli.app
    app = typer.Typer()
    app.registered_commands.extend(cli.app.registered_commands)
    register(app)
    return app


def invoke(*args: object, env: dict[str, str] | None = None) -> Any:
    """Run ``keytrail ARGS`` in this process (so flows use the test's Prefect API)."""
    return CliRunner().invoke(keytrail(), [str(a) for a in args], env=env)


def download_lake(s3: Any, bucket: str, prefix: str, target: Path) -> Path:
    """An S3 lake as it is in the bucket, copied down the way an analyst would; every object
    must have been written with SSE-KMS."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = target / item["Key"][len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
            head = s3.head_object(Bucket=bucket, Key=item["Key"])
            assert head["ServerSideEncryption"] == "aws:kms", item["Key"]
    return target
