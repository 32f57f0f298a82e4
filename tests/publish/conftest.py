"""Session fixtures for the publishing tests: the hand-written fixture lake (goldens) and a
generated lake with real detections (browser and screenshot)."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from analytics.adapters.lake import LocalLake
from analytics.publish import reports
from analytics.publish.reports.daily import DailyReport
from tests.publish import fixture
from tests.publish.helpers import HEC_OK

GENERATED_DAY = dt.date(2026, 11, 14)


@pytest.hookimpl(tryfirst=True)  # before xdist's hook reads the groups, however pytest is started
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the publishing tests on one xdist worker: their session lakes are built once."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("publish"))


@dataclass(frozen=True)
class BuiltReport:
    lake: LocalLake
    report: DailyReport
    files: dict[str, Path]


@pytest.fixture(scope="session")
def fixture_lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    """The hand-written trail, ingested, with the hand-written alerts of the report day."""
    return fixture.build_lake(tmp_path_factory.mktemp("fixture"))


@pytest.fixture(scope="session")
def fixture_report(fixture_lake: LocalLake) -> BuiltReport:
    """Every report of the fixture's report day, written, with ``generated_at`` pinned."""
    report, files = reports.run(fixture_lake, fixture.DAY, generated_at=fixture.GENERATED_AT)
    return BuiltReport(fixture_lake, report, files)


@pytest.fixture(scope="session")
def generated_report(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    """A generated organisation (15 days), ingested and scored by the real detectors."""
    from analytics.adapters.sources import LocalSource
    from analytics.detect.scoring import run as detect
    from analytics.generator import generate_tree
    from analytics.ingest.pipeline import IngestOptions, ingest

    root = tmp_path_factory.mktemp("generated")
    generate_tree(root / "trail", days=15, events_per_day=2000, seed=7, workers=1)
    lake = LocalLake(root / "lake")
    ingest(LocalSource(root / "trail"), lake, IngestOptions(workers=1))
    detect(lake, GENERATED_DAY, today=GENERATED_DAY + dt.timedelta(days=1))
    report, files = reports.run(
        lake, GENERATED_DAY, generated_at=dt.datetime(2026, 11, 15, 6, 0, tzinfo=dt.UTC)
    )
    return BuiltReport(lake, report, files)


SAMPLE_DAY = dt.date(2026, 11, 14)


@pytest.fixture(scope="session")
def sample_report(tmp_path_factory: pytest.TempPathFactory, sample_lake: LocalLake) -> BuiltReport:
    """The embedded sample trail's last day as ``keytrail demo`` leaves it: the demo's days
    scored oldest first, then the last day's report — the one with many keys (most of them only
    ever used, never managed, in the sample's window) and the README's screenshot."""
    import shutil

    from analytics.detect.scoring import run as detect
    from flows.demo import DEFAULT_DAYS, scored_span

    lake = LocalLake(tmp_path_factory.mktemp("samples") / "lake")
    shutil.copytree(sample_lake.root, lake.root)
    for day in scored_span(lake, SAMPLE_DAY, DEFAULT_DAYS).days:
        detect(lake, day, today=SAMPLE_DAY)
    report, files = reports.run(
        lake, SAMPLE_DAY, generated_at=dt.datetime(2026, 11, 15, 6, 0, tzinfo=dt.UTC)
    )
    return BuiltReport(lake, report, files)


@dataclass
class Listener:
    """A scripted HEC: answers with ``responses`` in turn (the last one repeats). With
    ``max_body`` set it refuses larger requests with 413, as HEC's ``max_content_length`` does,
    without using up a scripted response.

    With ``acks`` it behaves as a token with indexer acknowledgement enabled: a request without
    the ``X-Splunk-Request-Channel`` header is refused with 400 (HEC code 10); an accepted event
    request gets an ``ackId``; ``/services/collector/ack`` answers an ack true only from the
    ``ack_after``-th poll that asks for it on the same channel (never, with ``ack_after=0``)."""

    responses: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=lambda: [HEC_OK])
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    max_body: int | None = None
    acks: bool = False
    ack_after: int = 2
    ack_ids: dict[tuple[str, int], bytes] = field(default_factory=dict)
    ack_polls: dict[tuple[str, int], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_response(self) -> tuple[int, bytes, dict[str, str]]:
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    def answer(self, length: int) -> tuple[int, bytes, dict[str, str]]:
        if self.max_body is not None and length > self.max_body:
            text = f"Content-Length of {length} too large (maximum is {self.max_body})"
            return 413, b'{"text":"%s","code":27}' % text.encode(), {}
        return self.next_response()

    def handle(
        self, path: str, headers: dict[str, str], payload: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        channel = headers.get("X-Splunk-Request-Channel")
        if self.acks and not channel:
            return 400, b'{"text":"Data channel is missing","code":10}', {}
        if path.split("?")[0] == "/services/collector/ack":
            return self.poll(str(channel), payload)
        status, body, extra = self.answer(len(payload))
        if self.acks and 200 <= status < 300:
            with self.lock:
                ack_id = sum(1 for key in self.ack_ids if key[0] == channel)
                self.ack_ids[(str(channel), ack_id)] = payload
            body = b'{"text":"Success","code":0,"ackId":%d}' % ack_id
        return status, body, extra

    def poll(self, channel: str, payload: bytes) -> tuple[int, bytes, dict[str, str]]:
        if not self.acks:
            return 400, b'{"text":"ACK is disabled","code":14}', {}
        answer = {}
        for ack_id in orjson.loads(payload)["acks"]:
            key = (channel, int(ack_id))
            self.ack_polls[key] = self.ack_polls.get(key, 0) + 1
            known = key in self.ack_ids
            answer[str(ack_id)] = known and 0 < self.ack_after <= self.ack_polls[key]
        return 200, orjson.dumps({"acks": answer}), {}

    @property
    def delivered(self) -> list[bytes]:
        """Bodies of the event requests the listener accepted."""
        return [r["body"] for r in self.requests
                if 200 <= r["status"] < 300 and "/ack" not in r["path"]]  # fmt: skip

    @property
    def acknowledged(self) -> list[bytes]:
        """Bodies of the event requests whose ack the listener has answered true."""
        return [body for key, body in self.ack_ids.items()
                if 0 < self.ack_after <= self.ack_polls.get(key, 0)]  # fmt: skip


def serve(state: Listener, ssl_context: ssl.SSLContext | None = None) -> Iterator[Listener]:
    """Run ``state`` as an HTTP(S) server on a free loopback port while the generator lives."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = self.rfile.read(length)
            status, body, headers = state.handle(self.path, dict(self.headers), payload)
            state.requests.append({"path": self.path, "headers": dict(self.headers),
                                   "body": payload, "status": status})  # fmt: skip
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if ssl_context is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    yield from serve(Listener())
