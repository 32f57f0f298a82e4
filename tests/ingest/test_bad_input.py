"""Bad input: each refused with a reason naming the object; everything good beside it is kept."""

from __future__ import annotations

import datetime as dt
import gzip
import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.s3 import S3Source
from analytics.adapters.sources import SourceError
from analytics.ingest.pipeline import IngestOptions, ingest
from analytics.lake import schema as s
from tests import trail
from tests.conftest import upload
from tests.ingest.helpers import event_ids, ingest_json, lake_events, run_cli

T0 = dt.datetime(2026, 11, 2, 10, 5, tzinfo=dt.UTC)


def _key(n: int) -> str:
    return trail.log_key(T0 + dt.timedelta(minutes=n), f"K{n:02d}")


def _bad_objects() -> dict[str, tuple[bytes, str]]:
    good = trail.gz([trail.kms_record(seed="for-truncation")])
    return {
        _key(1): (good[: len(good) // 2], "truncated gzip"),
        _key(2): (b"\x00\x01binary garbage", "not gzip or JSON (first bytes 00 01 62 69)"),
        _key(3): (gzip.compress(b'{"Records": [{"eventID": "x",'), "invalid JSON"),
        _key(4): (gzip.compress(b'{"logFiles": []}'), "JSON has no Records array"),
        _key(5): (b"", "empty object (0 bytes)"),
        _key(6): (gzip.compress(b'{"Records": [' + b" " * 3_000_000 + b"]}"),
                  "decompresses to more than the 2,097,152-byte bound"),
    }  # fmt: skip


def _good_objects() -> dict[str, bytes]:
    return {_key(10 + i): trail.gz([trail.kms_record(seed=f"good-{i}-{j}") for j in range(5)])
            for i in range(4)}  # fmt: skip


@pytest.mark.usefixtures("decoder")
def test_every_bad_object_is_quarantined_and_every_good_one_ingested(
    s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    bad = _bad_objects()
    upload(s3, bucket, {k: v for k, (v, _) in bad.items()} | _good_objects())
    lake = tmp_path / "lake"
    summary = ingest_json(f"s3://{bucket}", "--lake", str(lake), "--endpoint-url", s3_endpoint,
                          "--max-object-mb", "2")  # fmt: skip
    assert summary["objects_ingested"] == 4
    assert summary["events_written"] == 20
    assert summary["objects_quarantined"] == len(bad)
    reasons = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in summary["quarantined"]}
    for key, (_, reason) in bad.items():
        assert reason in reasons[f"s3://{bucket}/{key}"]
    records = [json.loads(p.read_text()) for p in (lake / "quarantine" / "objects").glob("*.json")]
    assert {r["source_object"] for r in records} == {f"s3://{bucket}/{k}" for k in bad}
    assert all(r["reason"] for r in records)


@pytest.mark.usefixtures("decoder")
def test_a_bad_record_is_quarantined_alone(tmp_path: Path) -> None:
    records = [trail.kms_record(seed=f"r{i}") for i in range(4)]
    del records[1]["eventID"]
    del records[2]["eventTime"]
    trail.write_tree(tmp_path / "trail", {_key(1): trail.gz(records)})
    summary = ingest_json(str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"))
    assert (summary["events_written"], summary["records_quarantined"]) == (2, 2)
    (quarantined,) = (tmp_path / "lake" / "quarantine" / "records").glob("*.jsonl")
    lines = [json.loads(line) for line in quarantined.read_text().splitlines()]
    assert [(q["index"], q["reason"]) for q in lines] == [
        (1, "record has no eventID"),
        (2, "record has no eventTime"),
    ]
    assert orjson.loads(lines[1]["record"])["eventID"] == records[2]["eventID"]


@pytest.mark.usefixtures("decoder")
def test_invalid_utf8_is_replaced_kept_and_noted(tmp_path: Path) -> None:
    doc = trail.document([trail.kms_record(seed="u", userAgent="AGENT")]).replace(
        b"AGENT", b"\xc3\x28"
    )
    trail.write_tree(tmp_path / "trail", {_key(1): gzip.compress(doc)})
    summary = ingest_json(str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"))
    assert summary["events_written"] == 1 and summary["objects_with_notes"] == 1
    state = LocalLake(tmp_path / "lake").read_state().to_pylist()
    assert state[0][s.OBJ_NOTE] == "invalid UTF-8 replaced with U+FFFD"


def test_strict_makes_any_quarantine_a_failure(tmp_path: Path) -> None:
    trail.write_tree(
        tmp_path / "trail", {_key(1): b"garbage", _key(2): trail.gz([trail.kms_record()])}
    )
    lake = str(tmp_path / "lake")
    result = run_cli("ingest", str(tmp_path / "trail"), "--lake", lake, "--strict", check=False)
    assert result.returncode == 1
    assert "quarantined" in result.stdout and _key(1) in result.stdout
    assert len(event_ids(tmp_path / "lake")) == 1


def test_quarantined_object_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    root = tmp_path / "trail"
    trail.write_tree(root, {_key(1): b"garbage"})
    lake = str(tmp_path / "lake")
    assert ingest_json(str(root), "--lake", lake)["objects_quarantined"] == 1
    again = ingest_json(str(root), "--lake", lake)
    assert (again["objects_quarantined"], again["objects_skipped"]) == (0, 1)
    trail.write_tree(root, {_key(1): trail.gz([trail.kms_record(seed="fixed")])})
    fixed = ingest_json(str(root), "--lake", lake)
    assert (fixed["objects_ingested"], fixed["events_written"]) == (1, 1)
    (row,) = LocalLake(tmp_path / "lake").read_state().to_pylist()
    assert row[s.OBJ_STATUS] == s.STATUS_INGESTED and row[s.OBJ_REASON] is None


def test_object_keys_never_escape_the_quarantine_folder(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")

    class HostileSource:
        remote = False

        def describe(self) -> str:
            return "hostile"

        def list_objects(self, days: object) -> Iterator[Any]:
            from analytics.adapters.sources import ObjectRef

            name = "../../../../etc/111122223333_CloudTrail_eu-west-1_20261102T1005Z_abcdefghijklmnop.json.gz"
            yield ObjectRef(name, 3, "e", None)

        def fetch(self, ref: object, limit: int | None = None) -> bytes:
            return b"bad"

    summary = ingest(HostileSource(), lake, IngestOptions(workers=1))
    assert summary.objects_quarantined == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(lake.root) for p in written)


# --- S3 errors, through a local proxy that answers like S3 does when things go wrong ----------


class _FaultyProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the moto server, but answers GETs of chosen keys with S3 errors first."""

    upstream = ""
    faults: dict[str, list[int]] = {}
    seen: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        for fragment, codes in self.faults.items():
            if fragment in self.path and self.command == "GET" and codes:
                code = codes.pop(0)
                name = {503: "SlowDown", 500: "InternalError", 403: "AccessDenied"}[code]
                body = f"<Error><Code>{name}</Code><Message>injected</Message></Error>".encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command)
        for name, value in self.headers.items():
            if name.lower() not in ("host", "content-length"):
                request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, payload = error.code, error.headers, error.read()
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward


@pytest.fixture
def faulty_endpoint(s3_endpoint: str) -> Iterator[type[_FaultyProxy]]:
    handler = type("Proxy", (_FaultyProxy,), {"upstream": s3_endpoint, "faults": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()


def test_throttling_and_5xx_are_retried(s3: Any, bucket: str, faulty_endpoint: Any,
                                        tmp_path: Path) -> None:  # fmt: skip
    objects = _good_objects()
    upload(s3, bucket, objects)
    first, second = sorted(objects)[:2]
    faulty_endpoint.faults = {
        first.rsplit("/", 1)[-1]: [503, 503],
        second.rsplit("/", 1)[-1]: [500],
    }
    source = S3Source(bucket, endpoint_url=faulty_endpoint.url)
    summary = ingest(source, LocalLake(tmp_path / "lake"), IngestOptions(workers=1))
    assert (summary.objects_ingested, summary.objects_failed) == (4, 0)
    assert summary.events_written == 20
    gets = [line for line in faulty_endpoint.seen if first.rsplit("/", 1)[-1] in line]
    assert len(gets) == 3  # two throttled answers, then success


def test_access_denied_names_the_key_and_the_missing_permission(
    s3: Any, bucket: str, faulty_endpoint: Any, tmp_path: Path
) -> None:
    objects = _good_objects()
    upload(s3, bucket, objects)
    denied = sorted(objects)[0]
    faulty_endpoint.faults = {denied.rsplit("/", 1)[-1]: [403] * 20}
    source = S3Source(bucket, endpoint_url=faulty_endpoint.url)
    lake = LocalLake(tmp_path / "lake")
    summary = ingest(source, lake, IngestOptions(workers=1))
    assert summary.objects_ingested == 3 and summary.objects_failed == 1
    (message,) = summary.failed
    assert f"s3://{bucket}/{denied}" in message
    assert "access denied" in message and "s3:GetObject" in message
    # A failed fetch is not remembered: the next run tries the object again.
    faulty_endpoint.faults = {}
    retry = ingest(source, lake, IngestOptions(workers=1))
    assert (retry.objects_ingested, retry.objects_skipped) == (1, 3)


def test_missing_bucket_is_a_clear_error(s3_endpoint: str, tmp_path: Path) -> None:
    result = run_cli("ingest", "s3://no-such-bucket-here", "--lake", str(tmp_path / "lake"),
                     "--endpoint-url", s3_endpoint, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "bucket 'no-such-bucket-here' does not exist" in result.stderr
    with pytest.raises(SourceError, match="no-such-bucket-here"):
        list(S3Source("no-such-bucket-here", endpoint_url=s3_endpoint).list_objects(None))


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "ingest", str(tmp_path / "nope"), "--lake", str(tmp_path / "lake"), check=False
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_secrets_never_reach_output(s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    upload(s3, bucket, {_key(1): b"garbage"} | _good_objects())
    result = run_cli("ingest", f"s3://{bucket}", "--lake", str(tmp_path / "lake"),
                     "--endpoint-url", s3_endpoint)  # fmt: skip
    files = [p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    for text in (result.stdout.encode(), result.stderr.encode(), *files):
        assert b"testing" not in text  # the dummy secret key's value
    assert lake_events(tmp_path / "lake").height == 20


@pytest.mark.usefixtures("decoder")
def test_a_lone_surrogate_escape_costs_only_its_record(tmp_path: Path) -> None:
    """``\\ud800`` alone is not Unicode: its record is refused, the records beside it are kept,
    and a valid surrogate pair or an escaped backslash before ``ud800`` is text as usual."""
    records = [trail.kms_record(seed=f"s{i}", userAgent=f"AGENT{i}") for i in range(5)]
    doc = trail.document(records)
    for marker, text in ((b"AGENT1", b"x\\ud800y"), (b"AGENT2", b"\\udfffz"),
                         (b"AGENT3", b"\\ud83d\\ude00"), (b"AGENT4", b"\\\\ud800")):  # fmt: skip
        doc = doc.replace(marker, text)
    trail.write_tree(tmp_path / "trail", {_key(1): gzip.compress(doc)})
    summary = ingest_json(str(tmp_path / "trail"), "--lake", str(tmp_path / "lake"))
    assert (summary["events_written"], summary["records_quarantined"]) == (3, 2)
    (quarantined,) = (tmp_path / "lake" / "quarantine" / "records").glob("*.jsonl")
    lines = [json.loads(line) for line in quarantined.read_text().splitlines()]
    assert [q["index"] for q in lines] == [1, 2]
    assert all("lone UTF-16 surrogate" in q["reason"] for q in lines)
    agents = set(lake_events(tmp_path / "lake").get_column("user_agent").to_list())
    assert agents == {"AGENT0", "\U0001f600", "\\ud800"}
