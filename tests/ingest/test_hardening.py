"""Ingest hardening: no input stops a run, and nothing is lost or dropped in silence."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.s3 import S3Source
from analytics.adapters.sources import LocalSource, ObjectRef
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests import trail
from tests.conftest import upload
from tests.ingest.helpers import KEYTRAIL, event_ids, ingest_json, lake_events, run_cli

T0 = dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.UTC)


def _key(n: int) -> str:
    return trail.log_key(T0 + dt.timedelta(minutes=n), f"H{n:02d}")


def deep_object(depth: int = 1000) -> bytes:
    """A tiny gzip object whose one record's additionalEventData is ``[`` nested ``depth`` deep."""
    record = trail.document([trail.kms_record(seed="deep", additionalEventData="@")])
    return gzip.compress(record.replace(b'"@"', b"[" * depth + b"]" * depth), mtime=0)


def _good(n: int, per: int = 3) -> bytes:
    return trail.gz([trail.kms_record(seed=f"good-{n}-{j}") for j in range(per)])


def _quarantined_records(lake: Path) -> list[dict[str, Any]]:
    files = sorted((lake / "quarantine" / "records").glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


# --- 1. any decode failure quarantines its object ----------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_deeply_nested_object_is_quarantined_and_its_neighbours_kept(
    tmp_path: Path, workers: str
) -> None:
    data = deep_object()
    assert len(data) < 1024  # the whole attack fits in well under a kilobyte
    objects = {_key(1): _good(1), _key(2): data, _key(3): _good(3)}
    trail.write_tree(tmp_path / "trail", objects)
    lake = tmp_path / "lake"
    args = (str(tmp_path / "trail"), "--lake", str(lake), "--workers", workers, "--chunk-kb", "1")
    summary = ingest_json(*args)
    assert (summary["objects_ingested"], summary["objects_quarantined"]) == (2, 1)
    assert summary["events_written"] == 6
    (line,) = summary["quarantined"]
    assert line.startswith(_key(2)) and "nested too deeply" in line and "\n" not in line
    (record,) = [json.loads(p.read_text()) for p in (lake / "quarantine" / "objects").iterdir()]
    assert record["source_object"] == _key(2) and "nested too deeply" in record["reason"]
    again = ingest_json(*args)  # the rerun neither aborts nor reads anything again
    assert (again["objects_skipped"], again["events_written"]) == (3, 0)


def test_a_deeply_nested_value_never_escapes_the_reader_as_an_exception() -> None:
    from analytics.ingest.cloudtrail import parse_object
    from analytics.ingest.decompress import RejectedObject

    with pytest.raises(RejectedObject, match="nested too deeply"):
        parse_object(deep_object(), "deep.json.gz")


# --- 2. eventID clashes --------------------------------------------------------------------------


def _clash_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    decrypt = trail.kms_record("Decrypt", seed="held")
    hider = trail.kms_record("ScheduleKeyDeletion", when="2026-11-02T10:01:00Z", seed="hider",
                             request={"keyId": trail.KEY_ID, "pendingWindowInDays": 7})  # fmt: skip
    hider["eventID"] = decrypt["eventID"]
    return decrypt, hider


def test_an_event_id_reused_for_other_content_is_a_quarantined_clash(tmp_path: Path) -> None:
    decrypt, hider = _clash_pair()
    other = trail.kms_record(seed="redelivered")
    root, lake = tmp_path / "trail", tmp_path / "lake"
    trail.write_tree(root, {_key(1): trail.gz([decrypt, other])})
    first = ingest_json(str(root), "--lake", str(lake))
    assert (first["events_written"], first["event_id_clashes"]) == (2, 0)
    # Later: the same eventID with other content, and an identical redelivery of `other`.
    trail.write_tree(root, {_key(2): trail.gz([hider, trail.kms_record(seed="new")]),
                            _key(3): trail.gz([other])})  # fmt: skip
    second = ingest_json(str(root), "--lake", str(lake))
    assert second["event_id_clashes"] == 1
    assert second["duplicate_events_dropped"] == 1  # the identical redelivery only
    assert second["events_written"] == 1
    (reason,) = second["clashes"]
    for fact in (_key(1), _key(2), "'Decrypt'", "'ScheduleKeyDeletion'", decrypt["eventID"]):
        assert fact in reason
    (quarantined,) = _quarantined_records(lake)
    assert quarantined["source_object"] == _key(2) and quarantined["reason"] == reason
    assert json.loads(quarantined["record"])[s.EVENT_NAME] == "ScheduleKeyDeletion"
    events = lake_events(lake).filter(lake_events(lake)[s.EVENT_ID] == decrypt["eventID"])
    assert events.get_column(s.EVENT_NAME).to_list() == ["Decrypt"]
    (state,) = [r for r in LocalLake(lake).read_state().to_pylist() if r[s.OBJ_KEY] == _key(2)]
    assert state[s.OBJ_RECORDS_QUARANTINED] == 1


def test_a_clash_within_one_run_is_caught_too(tmp_path: Path) -> None:
    decrypt, hider = _clash_pair()
    root, lake = tmp_path / "trail", tmp_path / "lake"
    trail.write_tree(root, {_key(1): trail.gz([decrypt]), _key(2): trail.gz([hider, decrypt])})
    summary = ingest_json(str(root), "--lake", str(lake), "--workers", "1")
    assert (summary["events_written"], summary["event_id_clashes"]) == (1, 1)
    assert summary["duplicate_events_dropped"] == 1
    assert "'Decrypt'" in summary["clashes"][0] and _key(1) in summary["clashes"][0]
    result = run_cli("ingest", str(root), "--lake", str(tmp_path / "other"), "--strict",
                     check=False)  # fmt: skip
    assert result.returncode == 1
    assert "eventID clashes quarantined" in result.stdout and "eventID clash:" in result.stdout


def test_the_days_report_counts_the_clashes_held_back(tmp_path: Path) -> None:
    decrypt, hider = _clash_pair()
    root, lake = tmp_path / "trail", tmp_path / "lake"
    trail.write_tree(root, {_key(1): trail.gz([decrypt]), _key(2): trail.gz([hider])})
    ingest_json(str(root), "--lake", str(lake), "--workers", "1")
    (record,) = _quarantined_records(lake)
    assert record["event_date"] == "2026-11-02"
    run_cli("report", "--lake", str(lake), "--date", "2026-11-02")
    folder = lake / "reports" / "2026-11-02"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["event_id_clashes"] == 1
    assert "eventID clashes quarantined" in (folder / "report.md").read_text()
    run_cli("report", "--lake", str(lake), "--date", "2026-11-03", check=False)
    other = lake / "reports" / "2026-11-03" / "summary.json"
    assert not other.exists() or json.loads(other.read_text())["event_id_clashes"] == 0


# --- 3. the size bound holds while reading -----------------------------------------------------


def test_a_huge_plain_object_is_refused_without_being_read(tmp_path: Path) -> None:
    root = tmp_path / "trail"
    path = root / _key(1).replace(".json.gz", ".json")
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:  # 512 MiB, sparse: costs no disk
        handle.write(b'{"Records": [')
        handle.truncate(512 * 1024 * 1024)
    trail.write_tree(root, {_key(2): _good(2)})
    tracemalloc.start()
    try:
        summary = ingest(LocalSource(root), LocalLake(tmp_path / "lake"),
                         IngestOptions(workers=1, max_object_bytes=1024 * 1024))  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.objects_quarantined, summary.events_written) == (1, 3)
    assert "larger than the 1,048,576-byte bound" in summary.quarantined[0]
    assert peak < 64 * 1024 * 1024


def test_local_and_s3_sources_read_no_more_than_asked(
    s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    big = b'{"Records": [' + b" " * (3 * 1024 * 1024) + b"]}"
    (tmp_path / "big.json").write_bytes(big)
    # The listing said 10 bytes; the object grew after: the read still stops at the limit.
    stale = ObjectRef("big.json", 10, "e", None)
    assert len(LocalSource(tmp_path).fetch(stale, 1001)) == 1001
    assert LocalSource(tmp_path).fetch(stale) == big
    upload(s3, bucket, {"big.json": big})
    source = S3Source(bucket, endpoint_url=s3_endpoint)
    ref = ObjectRef(f"s3://{bucket}/big.json", 10, "e", None)
    assert len(source.fetch(ref, 1001)) == 1001
    assert source.fetch(ref) == big


def test_an_object_that_grew_past_the_bound_after_listing_is_refused(tmp_path: Path) -> None:
    from analytics.ingest.decompress import RejectedObject, to_json_bytes

    head = gzip.compress(os.urandom(5000))  # incompressible: the gzip is longer than the bound
    for data in (b'{"Records": [' + b" " * 2000, head):
        with pytest.raises(RejectedObject, match="larger than the 1,000-byte bound"):
            to_json_bytes(data[:1001], 1000)


# --- 4. implausible event times ------------------------------------------------------------------


def test_implausible_event_times_are_quarantined_and_plausible_ones_kept(tmp_path: Path) -> None:
    records = [
        trail.kms_record(seed="epoch", when="1970-01-01T00:00:00Z"),
        trail.kms_record(seed="far", when="9999-12-31T23:59:59Z"),
        trail.kms_record(seed="fine"),
        trail.kms_record(seed="early", when="2013-10-31T23:59:59Z"),
    ]
    root = tmp_path / "trail"
    trail.write_tree(root, {_key(1): trail.gz(records)})
    summary = ingest_json(str(root), "--lake", str(tmp_path / "lake"))
    assert (summary["events_written"], summary["records_quarantined"]) == (1, 3)
    assert event_ids(tmp_path / "lake") == [records[2]["eventID"]]
    reasons = {q["index"]: q["reason"] for q in _quarantined_records(tmp_path / "lake")}
    assert "before CloudTrail existed (2013-11-01)" in reasons[0]
    assert "more than 24 h after the object was delivered" in reasons[1]
    assert "before CloudTrail existed" in reasons[3]
    assert sorted(p.name for p in (tmp_path / "lake" / "events").iterdir()) == [
        "event_date=2026-11-02"
    ]


def test_the_time_bound_is_measured_from_the_delivery_of_the_object(tmp_path: Path) -> None:
    from analytics.ingest.cloudtrail import EARLIEST_EVENT_TIME, LATEST_AFTER_DELIVERY

    delivered = dt.datetime(2026, 11, 2, 10, 10, tzinfo=dt.UTC)
    within = delivered + LATEST_AFTER_DELIVERY - dt.timedelta(minutes=1)
    beyond = delivered + LATEST_AFTER_DELIVERY + dt.timedelta(minutes=1)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    records = [trail.kms_record(seed="within", when=within.strftime(stamp)),
               trail.kms_record(seed="beyond", when=beyond.strftime(stamp))]  # fmt: skip
    root = tmp_path / "trail"
    trail.write_tree(root, {_key(1): trail.gz(records)})
    os.utime(root / _key(1), (delivered.timestamp(), delivered.timestamp()))
    summary = ingest(LocalSource(root), LocalLake(tmp_path / "lake"), IngestOptions(workers=1))
    assert (summary.events_written, summary.records_quarantined) == (1, 1)
    assert summary.objects_with_notes == 1  # the kept one is after delivery: noted
    (row,) = LocalLake(tmp_path / "lake").read_state().to_pylist()
    assert row[s.OBJ_NOTE] == "1 record(s) timed after the object was delivered"
    assert EARLIEST_EVENT_TIME.year == 2013


# --- 5. a killed ingest leaves no process and nothing staged --------------------------------------


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _big_object(seed: str, records: int) -> bytes:
    """``records`` distinct KMS records in one object, built from a template (fast to make)."""
    template = orjson.dumps(trail.kms_record(seed="template"))
    placeholder = trail.kms_record(seed="template")["eventID"].encode()
    body = b",".join(
        template.replace(placeholder, trail.event_id(f"{seed}-{i}").encode())
        for i in range(records)
    )
    return gzip.compress(b'{"Records":[' + body + b"]}", compresslevel=1, mtime=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_ingest_leaves_no_process_and_nothing_staged_and_the_rerun_keeps_every_event(
    tmp_path: Path,
) -> None:
    """The CLI reads on threads of its own process and stages in its memory: SIGKILL ends the
    whole run at once, with no worker left running and no staged file left behind."""
    root, lake = tmp_path / "trail", tmp_path / "lake"
    trail.write_tree(root, {_key(i): _big_object(f"big{i}", 60_000) for i in range(6)})
    parent = subprocess.Popen(
        [*KEYTRAIL, "ingest", str(root), "--lake", str(lake), "--workers", "2",
         "--chunk-kb", "1", "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Kill once the merge has begun writing a day file (hidden until the commit): the read
        # threads are then busy with the next objects.
        deadline = time.monotonic() + 120
        while parent.poll() is None and time.monotonic() < deadline:
            if lake.is_dir() and any(lake.rglob(".tmp-*")):
                break
            time.sleep(0.02)
        assert parent.poll() is None, "the ingest ended too soon"
        assert not _children(parent.pid), "the ingest started processes of its own"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    finally:
        with contextlib.suppress(OSError):
            parent.kill()
    assert not (lake / "_staging").exists()
    assert not lake_events(lake).height  # nothing was committed
    rerun = ingest_json(str(root), "--lake", str(lake))
    assert rerun["events_written"] == 360_000
    assert not list(lake.rglob(".tmp-*")), "the rerun removed the killed run's hidden file"
    assert lake_events(lake).get_column(s.EVENT_ID).n_unique() == 360_000


# --- 7. acceptance ---------------------------------------------------------------------------------


def test_acceptance_good_objects_a_deep_object_and_a_clash(tmp_path: Path) -> None:
    decrypt, hider = _clash_pair()
    goods = {_key(10 + i): _good(10 + i, per=4) for i in range(4)}
    objects = goods | {_key(1): trail.gz([decrypt]), _key(2): deep_object(),
                       _key(3): trail.gz([hider, trail.kms_record(seed="beside-the-hider")])}  # fmt: skip
    root, lake = tmp_path / "trail", tmp_path / "lake"
    trail.write_tree(root, objects)
    result = run_cli("ingest", str(root), "--lake", str(lake), "--json", "--workers", "2",
                     "--chunk-kb", "1")  # fmt: skip
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    expected = sorted(
        [r["eventID"] for data in goods.values() for r in orjson.loads(gzip.decompress(data))[
            "Records"]] + [decrypt["eventID"], trail.kms_record(seed="beside-the-hider")["eventID"]]
    )  # fmt: skip
    assert event_ids(lake) == expected  # every good event, exactly once
    assert summary["events_written"] == len(expected) == 18
    assert (summary["objects_quarantined"], summary["event_id_clashes"]) == (1, 1)
    assert "nested too deeply" in summary["quarantined"][0]
    assert "eventID clash" in summary["clashes"][0]
    assert [q["source_object"] for q in _quarantined_records(lake)] == [_key(3)]
    assert [p.name for p in (lake / "quarantine" / "objects").iterdir()]
    human = run_cli("ingest", str(root), "--lake", str(tmp_path / "lake2"), "--strict",
                    check=False)  # fmt: skip
    assert human.returncode == 1
    assert "eventID clashes quarantined" in human.stdout
    assert "nested too deeply" in human.stdout
    assert event_ids(tmp_path / "lake2") == expected
