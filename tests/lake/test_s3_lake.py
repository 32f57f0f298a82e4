"""A lake in S3 (``--lake s3://bucket/prefix``) through a moto server over HTTP.

Every command works on it in place as on a local folder; every object keytrail writes there
is encrypted with SSE-KMS under the configured key; two runs exclude each other through a lock
object; keys found in the bucket never become paths on this machine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from analytics.adapters.lock import LakeLocked, LockHolder
from analytics.adapters.s3_lake import S3LakeLock, S3LakeUri, in_place_lake
from analytics.lake import schema as s
from flows.cli import app
from tests.flows.conftest import copy_days

DAYS = ["2026-11-12", "2026-11-13", "2026-11-14"]
LAST = DAYS[-1]


@pytest.fixture
def env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3 pointed at the moto server; the cache folder (which must stay empty) in the test's."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    return {"AWS_ENDPOINT_URL_S3": s3_endpoint, "KEYTRAIL_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def kms_key(s3_endpoint: str) -> str:
    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name="us-east-1")
    return str(kms.create_key(Description="keytrail lake")["KeyMetadata"]["Arn"])


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_days([*DAYS, "2026-11-15"], tmp_path_factory.mktemp("trail"))


def keytrail(*args: object) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def objects(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item
    return found


def read_events(s3: Any, bucket: str, prefix: str, tmp: Path) -> pl.DataFrame:
    """The lake's events as an analyst reading the bucket would get them."""
    frames = []
    for key in objects(s3, bucket, f"{prefix}events/"):
        target = tmp / key.replace("/", "_")
        s3.download_file(bucket, key, str(target))
        frames.append(pl.read_parquet(target))
    return pl.concat(frames).sort(s.EVENT_ID)


def test_every_command_works_on_an_s3_lake_with_sse_kms(
    env: dict[str, str], s3: Any, bucket: str, kms_key: str, trail: Path, tmp_path: Path
) -> None:
    lake = f"s3://{bucket}/lake"
    keytrail("ingest", trail, "--lake", lake, "--start", DAYS[0], "--end", LAST,
             "--workers", "1", "--lake-kms-key", kms_key)  # fmt: skip
    keytrail("detect", "--lake", lake, "--date", LAST, "--lake-kms-key", kms_key)
    keytrail("report", "--lake", lake, "--date", LAST, "--lake-kms-key", kms_key)
    keytrail("export", "--lake", lake, "--date", LAST, "--sink", "ocsf-file",
             "--lake-kms-key", kms_key)  # fmt: skip

    written = objects(s3, bucket, "lake/")
    for part in ("_state/objects.parquet", f"alerts/event_date={LAST}/alerts.parquet",
                 f"ocsf/event_date={LAST}/alerts.ocsf.jsonl", f"reports/{LAST}/report.html"):  # fmt: skip
        assert f"lake/{part}" in written, sorted(written)
    assert any(key.startswith(f"lake/events/event_date={LAST}/") for key in written)
    assert not any("lock.json" in key or "/." in key for key in written)
    for key in written:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == kms_key, key

    # The same work on a local folder gives the same events and alerts.
    local = tmp_path / "local"
    keytrail("ingest", trail, "--lake", local, "--start", DAYS[0], "--end", LAST, "--workers", "1")
    keytrail("detect", "--lake", local, "--date", LAST)
    in_bucket = read_events(s3, bucket, "lake/", tmp_path)
    on_disk = pl.read_parquet(sorted((local / "events").rglob("*.parquet"))).sort(s.EVENT_ID)
    assert in_bucket.height == on_disk.height > 0
    assert_frame_equal(in_bucket, on_disk)
    s3.download_file(bucket, f"lake/alerts/event_date={LAST}/alerts.parquet", str(tmp_path / "a"))
    assert_frame_equal(
        pl.read_parquet(tmp_path / "a"),
        pl.read_parquet(local / "alerts" / f"event_date={LAST}" / "alerts.parquet"),
    )

    # evaluate reads only; a read-only command takes no lock and writes nothing.
    before = {k: v["ETag"] for k, v in objects(s3, bucket, "lake/").items()}
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"start": DAYS[0], "days": 3, "scenarios": []}))
    CliRunner().invoke(app, ["evaluate", "--lake", lake, "--labels", str(labels)])
    assert {k: v["ETag"] for k, v in objects(s3, bucket, "lake/").items()} == before


def test_a_rerun_uploads_only_what_changed_and_keeps_the_rows(
    env: dict[str, str], s3: Any, bucket: str, trail: Path, tmp_path: Path
) -> None:
    lake = f"s3://{bucket}/nightly"
    args = ("ingest", trail, "--lake", lake, "--start", DAYS[0], "--end", LAST, "--workers", "1")
    keytrail(*args)
    first = {k: v["ETag"] for k, v in objects(s3, bucket, "nightly/events/").items()}
    rows = read_events(s3, bucket, "nightly/", tmp_path).height
    second = json.loads(keytrail(*args, "--json").stdout)
    assert second["events_written"] == 0 and second["objects_skipped"] > 0
    assert {k: v["ETag"] for k, v in objects(s3, bucket, "nightly/events/").items()} == first
    assert read_events(s3, bucket, "nightly/", tmp_path).height == rows
    for item in objects(s3, bucket, "nightly/").values():  # default: SSE-KMS with aws/s3
        head = s3.head_object(Bucket=bucket, Key=item["Key"])
        assert head["ServerSideEncryption"] == "aws:kms"


def _foreign_holder(heartbeat: dt.datetime) -> LockHolder:
    return LockHolder(host="batch-7.example", pid=4242, command="keytrail nightly 2026-11-14",
                      started_at=heartbeat, heartbeat_at=heartbeat, token=uuid.uuid4().hex)  # fmt: skip


def test_a_run_is_refused_while_another_holds_the_lake_and_a_stale_lock_is_recovered(
    env: dict[str, str], s3: Any, bucket: str, trail: Path
) -> None:
    lake = f"s3://{bucket}/locked"
    lock_key = "locked/_state/lock.json"
    now = dt.datetime.now(dt.UTC)
    s3.put_object(Bucket=bucket, Key=lock_key, Body=_foreign_holder(now).to_json())
    result = CliRunner().invoke(app, ["ingest", str(trail), "--lake", lake, "--workers", "1"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "is locked by 'keytrail nightly 2026-11-14' (pid 4242 on batch-7.example" in message
    assert f"s3://{bucket}/{lock_key}" in message
    assert "events/" not in " ".join(objects(s3, bucket, "locked/"))

    stale = now - dt.timedelta(hours=7)
    s3.put_object(Bucket=bucket, Key=lock_key, Body=_foreign_holder(stale).to_json())
    keytrail("ingest", trail, "--lake", lake, "--workers", "1", "--start", LAST, "--end", LAST)
    assert lock_key not in objects(s3, bucket, "locked/")  # recovered, then released
    assert any(k.startswith("locked/events/") for k in objects(s3, bucket, "locked/"))


@pytest.fixture
def client(env: dict[str, str]) -> Any:
    return boto3.client("s3", region_name="us-east-1")


def test_the_lock_is_a_compare_and_swap_between_two_runs(client: Any, bucket: str) -> None:
    uri = S3LakeUri.parse(f"s3://{bucket}/cas")
    first = S3LakeLock(uri, client, "first")
    second = S3LakeLock(uri, client, "second")
    first.acquire()
    with pytest.raises(LakeLocked, match="'first'"):
        second.acquire()
    first.refresh(force=True)
    # Another run (after our heartbeat stalled past the TTL) took the lock over: we notice.
    late = S3LakeLock(uri, client, "late", ttl=dt.timedelta(seconds=0))
    late.acquire()
    from analytics.adapters.lock import LockLost

    with pytest.raises(LockLost):
        first.refresh(force=True)
    first.release()  # not ours any more: left alone
    holder = LockHolder.from_json(client.get_object(Bucket=bucket, Key="cas/_state/lock.json")
                                  ["Body"].read())  # fmt: skip
    assert holder.command == "late" and holder.host == socket.gethostname()
    late.release()
    assert "cas/_state/lock.json" not in objects(client, bucket, "cas/")


def test_hostile_keys_in_the_bucket_never_become_local_paths(
    env: dict[str, str], s3: Any, bucket: str, trail: Path, tmp_path: Path
) -> None:
    """Keys in the lake's prefix are untrusted: ingest and lake check work on the bucket in
    place, so a key with ``..`` or empty segments is at most a finding, never a file here."""
    lake = f"s3://{bucket}/hostile"
    keytrail("ingest", trail, "--lake", lake, "--workers", "1", "--start", LAST, "--end", LAST)
    hostile = ["hostile/events/../../../escaped.txt", "hostile/events//etc/passwd",
               f"hostile/events/event_date={LAST}/..\\..\\x.parquet"]  # fmt: skip
    for key in hostile:
        s3.put_object(Bucket=bucket, Key=key, Body=b"X")
    check = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--json"])
    assert check.exit_code in (0, 1), check.output
    again = json.loads(keytrail("ingest", trail, "--lake", lake, "--workers", "1", "--start",
                                LAST, "--end", LAST, "--json").stdout)  # fmt: skip
    assert again["events_written"] == 0
    assert not any(p.name in ("escaped.txt", "passwd") for p in tmp_path.rglob("*"))
    assert not (tmp_path / "cache").exists()
    assert set(hostile) <= set(objects(s3, bucket, "hostile/"))  # not ours: left alone


def test_a_bucket_that_does_not_exist_is_a_clear_error(env: dict[str, str], trail: Path) -> None:
    result = CliRunner().invoke(app, ["detect", "--lake", "s3://no-such-bucket-kt/lake",
                                      "--date", LAST])  # fmt: skip
    assert result.exit_code == 2
    assert "no-such-bucket-kt" in result.output and "does not exist" in result.output


@pytest.fixture(autouse=True)
def _no_real_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    yield
    assert not os.environ.get("AWS_PROFILE")


def test_a_day_merge_run_again_replaces_its_own_file_instead_of_counting_it_twice(
    env: dict[str, str], s3: Any, bucket: str, trail: Path
) -> None:
    """A merge whose worker died after putting its day file is run again: it finds a file of
    its own name, leaves it out of the day it merges against, and puts the same file again."""
    import datetime

    from analytics.adapters.sources import open_source
    from analytics.ingest.layout import Selection
    from analytics.ingest.pipeline import IngestOptions, merge_day, plan, read_partition

    lake = in_place_lake(f"s3://{bucket}/retried")
    day = datetime.date.fromisoformat(LAST)
    options = IngestOptions(selection=Selection(day, day), workers=1)
    source = open_source(str(trail))
    the_plan = plan(source, lake, options.selection)
    staging = lake.staging_area(the_plan.run_id)
    staged = [read_partition(source, p, options, the_plan.known_for(p), staging)
              for p in the_plan.partitions]  # fmt: skip
    files = tuple(f for part in staged for f in part.files if f.day == day)
    first = merge_day(lake, day, files, staging, "part-retried-00001.parquet", options)
    again = merge_day(lake, day, files, staging, "part-retried-00001.parquet", options)
    assert first.key == again.key == f"events/event_date={LAST}/part-retried-00001.parquet"
    assert again.written == first.written > 0 and again.duplicates == first.duplicates
    assert [f.name for f in lake.event_files(day)] == ["part-retried-00001.parquet"]
    staging.remove()


def test_the_analyst_api_opens_an_s3_lake_read_only(
    env: dict[str, str], s3: Any, bucket: str, trail: Path
) -> None:
    from analytics import api

    keytrail("ingest", trail, "--lake", f"s3://{bucket}/lake", "--start", LAST, "--end", LAST,
             "--workers", "1")  # fmt: skip
    before = {k: v["ETag"] for k, v in objects(s3, bucket, "lake/").items()}
    lake = api.open_lake(f"s3://{bucket}/lake")
    assert lake.last_day == dt.date.fromisoformat(LAST)
    assert api.events(lake, start=LAST, end=LAST).height > 0
    assert {k: v["ETag"] for k, v in objects(s3, bucket, "lake/").items()} == before


def test_a_reader_reads_the_bucket_in_place_and_creates_nothing_locally(
    env: dict[str, str], s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A notebook needs no copy of the lake: opening one lists the bucket, downloads nothing."""
    from analytics import api

    s3.put_object(Bucket=bucket, Key="busy/_state/objects.parquet", Body=b"state")
    lake = api.open_lake(f"s3://{bucket}/busy")
    assert lake.name == f"s3://{bucket}/busy"
    assert lake.event_dates() == []
    assert not lake.root.exists() and not (tmp_path / "cache").exists()  # nothing downloaded


def test_a_junk_object_in_an_s3_event_partition_is_skipped_and_found_by_lake_check(
    env: dict[str, str], s3: Any, bucket: str, trail: Path
) -> None:
    lake = f"s3://{bucket}/junk"
    keytrail("ingest", trail, "--lake", lake, "--workers", "1", "--start", DAYS[0], "--end", LAST)
    clean = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--json"])
    assert clean.exit_code == 0, clean.output
    junk = f"junk/events/event_date={LAST}/stray.parquet"
    s3.put_object(Bucket=bucket, Key=junk, Body=os.urandom(1024))

    result = CliRunner().invoke(app, ["detect", "--lake", lake, "--date", LAST, "--json"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["skipped_files"]) == [
        f"events/event_date={LAST}/stray.parquet"
    ]
    assert f"skipped s3://{bucket}/{junk}" in " ".join(result.stderr.split())

    check = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--json"])
    assert check.exit_code == 1, check.output
    found = json.loads(check.stdout)
    assert [(f["kind"], f["path"]) for f in found["findings"]] == [
        ("unreadable_file", f"events/event_date={LAST}/stray.parquet")
    ]


def test_lake_check_of_an_empty_s3_prefix_is_a_usage_error(
    env: dict[str, str], bucket: str
) -> None:
    result = CliRunner().invoke(app, ["lake", "check", "--lake", f"s3://{bucket}/nothing"])
    assert result.exit_code == 2
    assert "is not a keytrail lake" in " ".join(result.stderr.split())


def test_readers_of_an_s3_lake_in_place_never_write_to_it(
    env: dict[str, str], s3: Any, bucket: str, trail: Path
) -> None:
    """A notebook's feature query and a dry-run detect compute the features they lack, and keep
    them in memory: a reader holds no lock, so it must not put anything in the bucket."""
    from analytics import api

    lake = f"s3://{bucket}/readers"
    keytrail("ingest", trail, "--lake", lake, "--start", DAYS[0], "--end", LAST,
             "--workers", "1")  # fmt: skip
    before = {k: v["ETag"] for k, v in objects(s3, bucket, "readers/").items()}
    assert not any("/features/" in key for key in before)

    opened = api.open_lake(lake)
    features = api.hourly_features(opened, DAYS[0], LAST)
    assert features.height > 0
    dry = json.loads(keytrail("detect", "--lake", lake, "--date", LAST, "--dry-run",
                              "--json").stdout)  # fmt: skip
    assert dry["dry_run"] and dry["feature_days_recomputed"] == len(DAYS)
    assert {k: v["ETag"] for k, v in objects(s3, bucket, "readers/").items()} == before

    # The same detect for real writes the features, the incidents and the alerts in place.
    real = json.loads(keytrail("detect", "--lake", lake, "--date", LAST, "--json").stdout)
    written = set(objects(s3, bucket, "readers/")) - set(before)
    assert f"readers/alerts/event_date={LAST}/alerts.parquet" in written
    assert f"readers/incidents/event_date={LAST}/incidents.parquet" in written
    assert {f"readers/features/hourly/event_date={d}/features.parquet" for d in DAYS} <= written
    assert real["alerts"] == dry["alerts"]
