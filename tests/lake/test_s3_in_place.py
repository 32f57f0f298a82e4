"""An S3 lake is read where it is: a fresh worker detecting one night does not download the lake.

A generated 35-day trail is ingested into ``s3://bucket/lake`` on a moto server, and the night
before the scored one is detected as the nightly run would have. Then a "second machine" — its
own process, an empty cache folder — detects the last day through a proxy that counts every
byte S3 sends it. Its alerts must equal those of the same detect on a full local copy of the
lake, and what it transferred must be under a tenth of the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.generator import generate_tree
from analytics.lake import schema as s
from flows.cli import app
from tests.lake.conftest import keytrail_process
from tests.lake.s3_counting_proxy import CountingProxy

DAYS = 35
EVENTS_PER_DAY = 6000
SEED = 2027
START = dt.date(2026, 11, 1)
LAST = START + dt.timedelta(days=DAYS - 1)
EVE = LAST - dt.timedelta(days=1)
MAX_SHARE = 0.10

# Both tests read the one module fixture: on one xdist worker it is built once, not twice.
pytestmark = pytest.mark.xdist_group("s3-in-place")


def keytrail(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def lake_objects(s3: Any, bucket: str) -> dict[str, int]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="lake/"):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


@dataclass(frozen=True)
class Night:
    lake_bytes: int
    lake_objects: int
    lake_by_folder: dict[str, int]
    received: dict[str, int]
    by_key: dict[str, int]
    requests: dict[str, int]
    summary: dict[str, Any]
    in_bucket: dict[str, pl.DataFrame]
    on_disk: dict[str, pl.DataFrame]
    cache: Path
    writer_cache: Path


@pytest.fixture(scope="module")
def night(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Night:
    tmp = tmp_path_factory.mktemp("in-place")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    lake = f"s3://{bucket}/lake"
    tree = tmp / "trail"
    generate_tree(tree, days=DAYS, events_per_day=EVENTS_PER_DAY, seed=SEED, workers=2)

    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    patch.setenv("KEYTRAIL_CACHE_DIR", str(tmp / "first-machine"))
    try:
        keytrail("ingest", tree, "--lake", lake, "--workers", "2")
        keytrail("detect", "--lake", lake, "--date", EVE)  # last night's nightly run
    finally:
        patch.undo()

    objects = lake_objects(s3, bucket)
    local = tmp / "local"  # the same lake, copied whole, for the reference run

    def download(key: str) -> None:
        target = local / key.removeprefix("lake/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(download, objects))

    cache = tmp / "second-machine"
    with CountingProxy(s3_endpoint) as proxy:
        process = keytrail_process(
            "detect", "--lake", lake, "--date", LAST, "--json",
            env={"AWS_ENDPOINT_URL_S3": proxy.url, "KEYTRAIL_CACHE_DIR": str(cache)},
        )  # fmt: skip
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr
        received, requests = dict(proxy.received), dict(proxy.requests)
        by_key = dict(proxy.by_key)

    keytrail("detect", "--lake", local, "--date", LAST)
    in_bucket, on_disk = {}, {}
    for kind in ("alerts", "incidents"):
        relative = f"{kind}/event_date={LAST}/{kind}.parquet"
        target = tmp / f"bucket-{kind}.parquet"
        s3.download_file(bucket, f"lake/{relative}", str(target))
        in_bucket[kind] = pl.read_parquet(target)
        on_disk[kind] = pl.read_parquet(local / relative)
    by_lake_folder: dict[str, int] = {}
    for key, size in objects.items():
        folder = key.split("/")[1]
        by_lake_folder[folder] = by_lake_folder.get(folder, 0) + size
    return Night(sum(objects.values()), len(objects), by_lake_folder, received, by_key, requests, json.loads(stdout),
                 in_bucket, on_disk, cache, tmp / "first-machine")  # fmt: skip


def test_a_fresh_worker_detects_in_place_with_the_alerts_of_a_full_local_copy(
    night: Night,
) -> None:
    assert night.summary["alerts"] > 0, "the generator plants attacks on the last days"
    assert night.summary["feature_days_recomputed"] == 1  # only the scored day is new
    for kind, key in (("alerts", s.ALERT_ID), ("incidents", s.INCIDENT_ID)):
        assert night.in_bucket[kind].height == night.on_disk[kind].height
        assert_frame_equal(night.in_bucket[kind].sort(key), night.on_disk[kind].sort(key))
    # Nothing was copied down: neither machine's cache folder was even created (the first
    # ingested and detected in place too).
    assert not night.cache.exists() and not night.writer_cache.exists()


def test_a_fresh_worker_reads_under_a_tenth_of_the_lake(night: Night) -> None:
    read = night.received.get("GET", 0)
    by_folder: dict[str, int] = {}
    for key, size in night.by_key.items():
        folder = key.split("/")[1] if "/" in key else "(listings)"
        by_folder[folder] = by_folder.get(folder, 0) + size
    earlier = sum(size for key, size in night.by_key.items()
                  if key.startswith("lake/events/")
                  and not key.startswith(f"lake/events/event_date={LAST}/"))  # fmt: skip
    print(
        f"lake: {night.lake_objects} objects, {night.lake_bytes:,} bytes {night.lake_by_folder}; "
        f"detect {LAST} downloaded {read:,} bytes ({read / night.lake_bytes:.1%}) in "
        f"{night.requests}: {by_folder}; of earlier days' events {earlier:,}"
    )
    assert read > 0  # the proxy saw the reads: the measurement measures
    assert read / night.lake_bytes < MAX_SHARE
