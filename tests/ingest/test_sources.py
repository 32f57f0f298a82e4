"""Sources: every trail layout, over real HTTP to a local S3 server and from local folders."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.s3 import S3Source
from analytics.ingest.layout import Kind, LogName, Selection, classify
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests import trail
from tests.conftest import upload
from tests.ingest.helpers import event_ids, ingest_json, lake_events

T0 = dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.UTC)
ORG = "o-a1b2c3d4e5"


def _objects(layout: str) -> dict[str, bytes]:
    """Two log files (two accounts) plus a digest and an insight file, in one layout."""
    records_a = [trail.kms_record(seed="a1"), trail.kms_record(seed="a2")]
    records_b = [trail.kms_record(seed="b1", recipientAccountId=trail.OTHER_ACCOUNT)]
    org = ORG if layout in ("org", "control-tower") else None
    prefix = {"prefixed": "team/trails", "control-tower": ORG}.get(layout, "")
    keys = [
        trail.log_key(T0, "A", org=org, prefix=prefix),
        trail.log_key(T0, "B", account=trail.OTHER_ACCOUNT, org=org, prefix=prefix),
    ]
    if layout == "flat":
        keys = [k.rsplit("/", 1)[-1] for k in keys]
    objects = {keys[0]: trail.gz(records_a), keys[1]: trail.gz(records_b)}
    base = f"{prefix + '/' if prefix else ''}AWSLogs/{org + '/' if org else ''}{trail.ACCOUNT}"
    digest = (
        f"{base}/CloudTrail-Digest/{trail.REGION}/2026/11/02/"
        + trail.digest_key(T0).rsplit("/", 1)[-1]
    )
    insight = f"{base}/CloudTrail-Insight/{trail.REGION}/2026/11/02/{trail.ACCOUNT}_CloudTrail-Insight_{trail.REGION}_20261102T1010Z_abcdefghijklmnop.json.gz"
    objects[digest] = gzip.compress(b'{"digestStartTime": "x"}')
    objects[insight] = gzip.compress(b'{"Records": []}')
    objects["README.txt"] = b"not a log file"
    return objects


LAYOUTS = ["single-account", "org", "prefixed", "control-tower", "flat"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_s3_layouts_are_all_recognised(layout: str, s3: Any, bucket: str, s3_endpoint: str,
                                       tmp_path: Path) -> None:  # fmt: skip
    upload(s3, bucket, _objects(layout))
    summary = ingest_json(f"s3://{bucket}", "--lake", str(tmp_path / "lake"),
                          "--endpoint-url", s3_endpoint, "--workers", "1")  # fmt: skip
    assert summary["objects_seen"] == 2
    assert summary["objects_ingested"] == 2
    assert summary["digests_skipped"] == 1
    assert summary["events_written"] == 3
    assert summary["objects_quarantined"] == 0
    frame = lake_events(tmp_path / "lake")
    assert all(k.startswith(f"s3://{bucket}/") for k in frame.get_column(s.SOURCE_OBJECT))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_local_layouts_are_all_recognised(layout: str, tmp_path: Path) -> None:
    trail.write_tree(tmp_path / "trail", _objects(layout))
    summary = ingest_json(str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"))
    assert (summary["objects_ingested"], summary["events_written"]) == (2, 3)
    assert summary["digests_skipped"] == 1 and summary["insights_skipped"] == 1
    assert summary["other_files_skipped"] == 1


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abcdefghijklmnop.json.gz", Kind.LOG),
        ("111122223333_CloudTrail_eu-west-1_20261102T1005Z_abcdefghijklmnop.json", Kind.LOG),
        ("AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail-Digest/eu-west-1/2026/11/02/111122223333_CloudTrail-Digest_eu-west-1_t_eu-west-1_20261102T100500Z.json.gz", Kind.DIGEST),
        ("x/111122223333_CloudTrail_eu-west-1_20261302T1005Z_abcdefghijklmnop.json.gz", Kind.OTHER),
        ("x/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abc.json.gz.bak", Kind.OTHER),
        ("x/CloudTrail-Insight/111122223333_CloudTrail-Insight_eu-west-1_20261102T1005Z_abc.json.gz", Kind.INSIGHT),
        ("CloudTrail-Digest/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abc.json.gz", Kind.DIGEST),
        ("my-CloudTrail-logs/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abc.json.gz", Kind.LOG),
        ("x/111122223333_CloudTrail_eu-west-1_20260229T1005Z_abc.json.gz", Kind.OTHER),
    ],
)  # fmt: skip
def test_log_files_are_recognised_by_name(key: str, kind: Kind) -> None:
    assert classify(key)[0] is kind


def test_log_names_are_shared_by_the_files_of_one_partition() -> None:
    first = classify("a/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abc.json.gz")[1]
    second = classify("b/111122223333_CloudTrail_eu-west-1_20261102T2355Z_xyz.json.gz")[1]
    other = classify("b/111122223333_CloudTrail_eu-west-2_20261102T2355Z_xyz.json.gz")[1]
    assert first is second
    assert first == LogName("111122223333", "eu-west-1", dt.date(2026, 11, 2))
    assert other is not None and other.region == "eu-west-2"


def test_s3_listing_is_paginated(s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    objects = {
        trail.log_key(T0 + dt.timedelta(minutes=5 * i), f"P{i:03d}"): trail.gz(
            [trail.kms_record(seed=f"page-{i}")]
        )
        for i in range(23)
    }
    upload(s3, bucket, objects)
    source = S3Source(bucket, endpoint_url=s3_endpoint, page_size=5)
    summary = ingest(source, LocalLake(tmp_path / "lake"), IngestOptions(workers=1))
    assert summary.objects_ingested == 23
    assert len(event_ids(tmp_path / "lake")) == 23


def _dated_trail() -> dict[str, bytes]:
    """Events on Nov 2, 3 and 4 with late deliveries: the 2nd's last events arrive on the 3rd."""
    objects: dict[str, bytes] = {}
    for day in (2, 3, 4):
        for account in (trail.ACCOUNT, trail.OTHER_ACCOUNT):
            for region in ("eu-west-1", "us-east-1"):
                when = dt.datetime(2026, 11, day, 23, 58, tzinfo=dt.UTC)
                records = [
                    trail.kms_record(
                        when=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        seed=f"{day}-{account}-{region}",
                        awsRegion=region,
                        recipientAccountId=account,
                    )
                ]
                delivered = when + dt.timedelta(minutes=5)  # next day's folder
                key = trail.log_key(
                    delivered, f"d{day}{region[:2]}", account=account, region=region
                )
                objects[key] = trail.gz(records)
    return objects


def test_date_range_reads_the_next_days_folder_and_filters_by_event_time(
    s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    upload(s3, bucket, _dated_trail(), prefix="trails/")
    lake = tmp_path / "lake"
    summary = ingest_json(f"s3://{bucket}/trails", "--lake", str(lake), "--endpoint-url",
                          s3_endpoint, "--start", "2026-11-02", "--end", "2026-11-02")  # fmt: skip
    # Nov 2's events were delivered in Nov 3's folder; Nov 3's in Nov 4's (not listed).
    assert summary["events_written"] == 4
    assert summary["dates_written"] == ["2026-11-02"]
    dates = set(lake_events(lake).get_column(s.EVENT_DATE).cast(str))
    assert dates == {"2026-11-02"}


def test_account_and_region_narrow_the_listing(
    s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    upload(s3, bucket, _dated_trail())
    summary = ingest_json(f"s3://{bucket}", "--lake", str(tmp_path / "lake"), "--endpoint-url",
                          s3_endpoint, "--account", trail.OTHER_ACCOUNT, "--region", "us-east-1")  # fmt: skip
    assert summary["objects_seen"] == 3
    frame = lake_events(tmp_path / "lake")
    assert set(frame.get_column(s.RECIPIENT_ACCOUNT_ID)) == {trail.OTHER_ACCOUNT}
    assert set(frame.get_column(s.AWS_REGION)) == {"us-east-1"}


def test_day_prefix_listing_finds_org_trails(s3: Any, bucket: str, s3_endpoint: str,
                                             tmp_path: Path) -> None:  # fmt: skip
    upload(s3, bucket, _objects("org"))
    source = S3Source(bucket, endpoint_url=s3_endpoint)
    selection = Selection(dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    keys = [r.key for r in source.list_objects(selection.delivery_days())]
    assert len([k for k in keys if "/CloudTrail/" in k]) == 2
    assert all(f"/AWSLogs/{ORG}/" in k for k in keys)


def _folder_listing(source: Any, days: list[dt.date]) -> dict[str, list[str]]:
    folders = source.day_prefixes(days)
    assert folders is not None
    return {
        source.folder_key(folder): [r.key for r in source.list_folder(folder)] for folder in folders
    }


def test_day_folders_list_what_the_whole_listing_lists(s3: Any, bucket: str, s3_endpoint: str,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """The nightly flow plans an S3 trail folder by folder: each folder must list the objects,
    and key them, exactly as one listing of the bucket would, under the key prefix the state
    records for them."""
    upload(s3, bucket, _objects("org"))
    source = S3Source(bucket, endpoint_url=s3_endpoint)
    days = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
    by_folder = _folder_listing(source, days)
    everything = sorted(r.key for r in source.list_objects(days))
    assert sorted(k for keys in by_folder.values() for k in keys) == everything
    for prefix, keys in by_folder.items():
        assert all(k.startswith(prefix) and "/" not in k[len(prefix) :] for k in keys)


def test_a_local_tree_is_not_planned_by_folder_but_lists_one_if_asked(tmp_path: Path) -> None:
    from analytics.adapters.sources import LocalSource, SourceError

    trail.write_tree(tmp_path, trail.small_trail(days=1, files_per_day=2))
    source = LocalSource(tmp_path)
    assert source.day_prefixes([dt.date(2026, 11, 2)]) is None
    everything = [r.key for r in source.list_objects(None)]
    folder = everything[0].rsplit("/", 1)[0] + "/"
    assert [r.key for r in source.list_folder(folder)] == [
        k for k in everything if k.startswith(folder)
    ]
    assert source.folder_key(folder) == folder
    with pytest.raises(SourceError, match="leaves the source folder"):
        list(source.list_folder("../"))


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 4096])
def test_a_local_fetch_reads_at_most_its_limit(tmp_path: Path, size: int) -> None:
    # Sources read at most ``limit`` bytes (one more than the decompression bound tells an
    # object too large apart): the whole file below it, exactly ``limit`` bytes at or above it.
    from analytics.adapters.sources import LocalSource, ObjectRef

    content = bytes(range(256)) * (size // 256 + 1)
    (tmp_path / "object.json.gz").write_bytes(content[:size])
    source = LocalSource(tmp_path)
    ref = next(iter(source.list_folder("")))
    assert source.fetch(ref) == content[:size]
    assert source.fetch(ref, 10) == content[: min(size, 10)]
    assert isinstance(ref, ObjectRef)


def test_a_local_fetch_reads_the_file_as_it_is_when_fetched(tmp_path: Path) -> None:
    from analytics.adapters.sources import LocalSource

    path = tmp_path / "object.json.gz"
    path.write_bytes(b"x" * 100)
    source = LocalSource(tmp_path)
    ref = next(iter(source.list_folder("")))
    path.write_bytes(b"y" * 5000)  # grown after listing: read to its end, or to the limit
    assert source.fetch(ref) == b"y" * 5000
    assert source.fetch(ref, 1000) == b"y" * 1000


@pytest.mark.parametrize("limit", [None, 3, 700])
def test_a_bounded_read_goes_on_past_the_size_it_measured(limit: int | None) -> None:
    # A pipe measures 0 bytes: the read must not stop at the measured size (a file growing
    # between measuring and reading looks the same).
    import os

    from analytics.adapters.sources import _read_bounded

    read_end, write_end = os.pipe()
    os.write(write_end, b"z" * 500)
    os.close(write_end)
    try:
        assert _read_bounded(read_end, limit) == b"z" * (500 if limit is None else min(limit, 500))
    finally:
        os.close(read_end)
