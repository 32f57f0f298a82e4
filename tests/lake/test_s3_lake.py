"""A lake in S3 (``--lake s3://bucket/prefix``) through a moto server over HTTP.

Every command works on it as on a local folder; every object keytrail writes there is
encrypted with SSE-KMS under the configured key; two runs exclude each other through a lock
object; keys in the bucket never escape the local mirror ingest still works through.
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

from analytics import schema as s
from analytics.adapters.lock import LakeLocked, LockHolder
from analytics.adapters.s3_lake import S3LakeLock, S3LakeMirror, S3LakeUri, safe_relative
from flows.cli import app
from tests.flows.conftest import copy_days

DAYS = ["2026-11-12", "2026-11-13", "2026-11-14"]
LAST = DAYS[-1]


@pytest.fixture
def env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3 pointed at the moto server; the mirror cache in the test's folder."""
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


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("lake/events/a.parquet", "events/a.parquet"),
        ("lake/../escape", None),
        ("lake/events/../../escape", None),
        ("lake//etc/passwd", None),
        ("lake/./x", None),
        ("lake/", None),
        ("other/x", None),
        ("lake/a\\..\\b", None),
    ],
)
def test_object_keys_cannot_leave_the_mirror(key: str, expected: str | None) -> None:
    assert safe_relative(key, "lake/") == expected


def test_pull_restores_the_bucket_state_and_skips_hostile_keys(
    client: Any, bucket: str, tmp_path: Path
) -> None:
    uri = S3LakeUri.parse(f"s3://{bucket}/mirror")
    for key, body in {"mirror/events/event_date=2026-11-14/a.parquet": b"A",
                      "mirror/_state/objects.parquet": b"S",
                      "mirror/events/../../../escaped.txt": b"X"}.items():  # fmt: skip
        client.put_object(Bucket=bucket, Key=key, Body=body)
    root = tmp_path / "cache" / "m"
    mirror = S3LakeMirror(uri, root, client)
    stats = mirror.pull()
    assert stats.transferred == 2 and stats.unsafe_keys == ["mirror/events/../../../escaped.txt"]
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))
    assert mirror.pull().transferred == 0  # nothing changed: nothing downloaded

    (root / "events/event_date=2026-11-14/a.parquet").write_bytes(b"tampered")
    (root / "events/stray.parquet").write_bytes(b"left by a failed run")
    client.delete_object(Bucket=bucket, Key="mirror/_state/objects.parquet")
    stats = mirror.pull()
    assert (root / "events/event_date=2026-11-14/a.parquet").read_bytes() == b"A"
    assert not (root / "events/stray.parquet").exists()
    assert not (root / "_state/objects.parquet").exists()
    assert (stats.transferred, stats.deleted) == (1, 2)

    (root / "events/new.parquet").write_bytes(b"N")
    (root / "events/event_date=2026-11-14/a.parquet").unlink()
    pushed = mirror.push()
    assert (pushed.transferred, pushed.deleted) == (1, 1)
    assert set(objects(client, bucket, "mirror/")) == {
        "mirror/events/new.parquet",
        "mirror/events/../../../escaped.txt",  # not ours to delete: it was never pulled
    }


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


def test_a_file_replaced_with_the_same_size_and_mtime_is_still_pushed(
    client: Any, bucket: str, tmp_path: Path
) -> None:
    """Lake writes rename a new file into place; coarse clocks must not hide the rewrite."""
    mirror = S3LakeMirror(S3LakeUri.parse(f"s3://{bucket}/same"), tmp_path / "m", client)
    target = tmp_path / "m" / "alerts" / "alerts.parquet"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"first")
    assert mirror.push().transferred == 1
    before = target.stat()
    replacement = target.with_name(".tmp-new")
    replacement.write_bytes(b"again")  # same size
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, target)
    assert mirror.push().transferred == 1
    body = client.get_object(Bucket=bucket, Key="same/alerts/alerts.parquet")["Body"].read()
    assert body == b"again"
    assert mirror.push().transferred == 0


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


def test_a_reader_reads_the_bucket_in_place_and_leaves_a_writers_mirror_alone(
    env: dict[str, str], s3: Any, bucket: str
) -> None:
    """A notebook opened during an ingest must not delete the run's unpushed files, and needs
    no copy of the lake of its own."""
    from analytics import api
    from analytics.adapters.s3_lake import default_mirror_root

    s3.put_object(Bucket=bucket, Key="busy/_state/objects.parquet", Body=b"state")
    uri = S3LakeUri.parse(f"s3://{bucket}/busy")
    writer_root = default_mirror_root(uri)
    unpushed = writer_root / "events" / "event_date=2026-11-14" / "part-new.parquet"
    unpushed.parent.mkdir(parents=True)
    unpushed.write_bytes(b"written by a run that has not pushed yet")
    lake = api.open_lake(f"s3://{bucket}/busy")
    assert lake.name == f"s3://{bucket}/busy" and lake.root != writer_root
    assert not lake.root.exists()  # nothing downloaded
    assert lake.event_dates() == []  # the unpushed partition is not in the bucket yet
    assert unpushed.exists()


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
