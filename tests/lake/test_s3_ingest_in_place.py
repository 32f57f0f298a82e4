"""Ingest writes an S3 lake in place (moto's server over HTTP): no local copy of the lake.

Staged files, day files, the quarantine and ``_state/`` are objects of the bucket, written with
SSE-KMS; ``_state/objects.parquet`` is the commit record, put last with a conditional write, so
a run killed before it leaves the state as it was and the rerun keeps every event once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.adapters.s3_lake import LakeConflict, in_place_lake
from analytics.lake import schema as s
from flows.cli import app
from tests.flows import helpers
from tests.flows.conftest import copy_days

REPO = Path(__file__).resolve().parents[2]
DAYS = ["2026-11-12", "2026-11-13", "2026-11-14"]
LAST = DAYS[-1]

_KILLED_BEFORE_STATE = """
import os, signal, sys
from analytics.ingest import pipeline as ingest

def killed(self, outcomes):  # the day files are put; the commit record is next
    os.kill(os.getpid(), signal.SIGKILL)

ingest.IngestCommit._write_state = killed
from flows.cli import main
sys.argv = ["keytrail", *sys.argv[1:]]
main()
"""


@pytest.fixture
def cache(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """boto3 pointed at the moto server; an empty cache folder that must stay empty."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_days([*DAYS, "2026-11-15"], tmp_path_factory.mktemp("trail"))


def keytrail(*args: object) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def etags(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def ingest_args(trail: Path, lake: str) -> list[object]:
    return ["ingest", trail, "--lake", lake, "--start", DAYS[0], "--end", LAST, "--workers", "1"]


def test_ingest_writes_the_bucket_in_place_and_nothing_on_this_machine(
    cache: Path, s3: Any, bucket: str, trail: Path, tmp_path: Path
) -> None:
    lake = f"s3://{bucket}/lake"
    first = json.loads(keytrail(*ingest_args(trail, lake), "--json").stdout)
    assert first["events_written"] > 0
    assert not cache.exists(), sorted(cache.rglob("*"))  # no mirror, no cache: nothing local

    written = etags(s3, bucket, "lake/")
    assert "lake/_state/objects.parquet" in written
    assert not any(k.startswith("lake/_staging/") or "/." in k for k in written), sorted(written)
    copied = helpers.download_lake(s3, bucket, "lake/", tmp_path / "copied")  # SSE-KMS on all

    local = tmp_path / "local"
    keytrail(*ingest_args(trail, str(local)))
    assert_frame_equal(helpers.events(copied), helpers.events(local))
    assert_frame_equal(helpers.state(copied), helpers.state(local))

    again = json.loads(keytrail(*ingest_args(trail, lake), "--json").stdout)
    assert again["events_written"] == 0 and again["objects_skipped"] == first["objects_ingested"]
    after = etags(s3, bucket, "lake/")
    assert {k: v for k, v in after.items() if "/events/" in k} == {
        k: v for k, v in written.items() if "/events/" in k
    }
    assert not cache.exists()


def test_a_run_killed_after_its_day_files_are_put_commits_nothing_and_the_rerun_keeps_each_event_once(
    cache: Path, s3_endpoint: str, s3: Any, bucket: str, trail: Path, tmp_path: Path
) -> None:
    lake = f"s3://{bucket}/crash"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_STATE, *map(str, ingest_args(trail, lake))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    left = etags(s3, bucket, "crash/")
    day_files = [k for k in left if k.startswith("crash/events/")]
    assert len(day_files) == len(DAYS), sorted(left)  # one whole file per day, put
    assert "crash/_state/objects.parquet" not in left  # … and no commit record
    partial = helpers.download_lake(s3, bucket, "crash/", tmp_path / "partial")
    events = helpers.events(partial)  # every file put is whole and readable
    assert events.get_column(s.EVENT_ID).n_unique() == events.height > 0
    found = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--json"])
    assert found.exit_code == 1  # until the rerun: events no commit record accounts for
    assert json.loads(found.stdout)["finding_counts"] == {"unrecorded_events": 1}

    rerun = json.loads(keytrail(*ingest_args(trail, lake), "--json").stdout)
    assert rerun["events_written"] == 0  # every event was already in a day file
    assert rerun["duplicate_events_dropped"] == events.height
    assert not cache.exists()
    check = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--json"])
    assert check.exit_code == 0, check.output

    clean = tmp_path / "clean"
    keytrail(*ingest_args(trail, str(clean)))
    done = helpers.download_lake(s3, bucket, "crash/", tmp_path / "done")
    assert_frame_equal(helpers.events(done), helpers.events(clean))
    assert_frame_equal(helpers.state(done), helpers.state(clean))
    assert not cache.exists()  # the check read the bucket in place too


def test_the_commit_record_is_a_compare_and_swap(
    cache: Path, s3: Any, bucket: str, trail: Path
) -> None:
    """Two writers that both read the state can never both commit: the second finds it changed."""
    lake = f"s3://{bucket}/cas"
    keytrail("ingest", trail, "--lake", lake, "--start", LAST, "--end", LAST, "--workers", "1")
    first = in_place_lake(lake)
    table, version = first.read_state_versioned()
    assert version is not None and table.num_rows > 0
    second = in_place_lake(lake)
    _, same = second.read_state_versioned()
    newer = second.write_state(table.slice(1), same)  # other content: an ETag of its own
    assert newer is not None and newer != version
    with pytest.raises(LakeConflict, match="changed by another writer"):
        first.write_state(table, version)
    fresh = in_place_lake(f"s3://{bucket}/cas-new")
    assert fresh.read_state_versioned()[1] is None
    fresh.write_state(table, None)
    with pytest.raises(LakeConflict):
        in_place_lake(f"s3://{bucket}/cas-new").write_state(table, None)  # created meanwhile
    stored = pl.read_parquet(s3.get_object(Bucket=bucket, Key="cas/_state/objects.parquet")
                             ["Body"].read())  # fmt: skip
    assert stored.height == table.num_rows - 1  # the second writer's
