"""A password or token inside a URL option, setting or flow parameter is never shown.

Each test gives keytrail such a URL for an endpoint that fails (nothing listening, or a listener
that refuses), then looks for the secret in everything the command printed and everything it
wrote to the lake.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ops.helpers import SECRET, TOKEN, dead_endpoint, files_containing, keytrail
from tests.publish import fixture


@pytest.fixture(scope="module")
def alerts_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake holding a day of alerts to export (the publishing tests' hand-written one)."""
    return fixture.build_lake(tmp_path_factory.mktemp("ops-lake")).root


@pytest.fixture
def refusing_hec() -> Iterator[str]:
    """A real HTTP listener that refuses every HEC post with 403, as Splunk does a bad token."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"text":"Invalid token","code":4}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("as_json", [False, True])
def test_ingest_never_shows_the_password_of_endpoint_url(tmp_path: Path, as_json: bool) -> None:
    lake = tmp_path / "lake"
    endpoint = dead_endpoint(f"ops:{SECRET}@")
    shown = keytrail("ingest", "s3://trail/cloudtrail", "--lake", lake, "--endpoint-url",
                     endpoint, "--workers", "1", *(["--json"] if as_json else []))  # fmt: skip
    assert shown.returncode == 2, shown.text
    assert SECRET not in shown.text
    assert "***@127.0.0.1" in shown.stderr  # the endpoint is still named
    assert files_containing(tmp_path, SECRET) == []


def test_an_s3_lake_never_shows_the_password_of_aws_endpoint_url(tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": dead_endpoint(f"ops:{SECRET}@"),
           "KEYTRAIL_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    shown = keytrail("detect", "--lake", "s3://lake-bucket/lake", "--date", "2026-11-01", env=env)
    assert shown.returncode == 2, shown.text
    assert SECRET not in shown.text
    assert files_containing(tmp_path, SECRET) == []


@pytest.mark.parametrize("as_json", [False, True])
def test_export_never_shows_the_hec_token_in_the_url(
    alerts_lake: Path, refusing_hec: str, as_json: bool
) -> None:
    url = f"{refusing_hec}/services/collector/event?token={TOKEN}"
    shown = keytrail("export", "--lake", alerts_lake, "--date", fixture.DAY, "--sink",
                     "splunk-hec", "--hec-url", url, *(["--json"] if as_json else []),
                     env={"KEYTRAIL_HEC_TOKEN": "header-token"})  # fmt: skip
    assert shown.returncode == 2, shown.text
    assert "rejected the token" in shown.text
    assert TOKEN not in shown.text and "header-token" not in shown.text
    assert files_containing(alerts_lake, TOKEN) == []


def test_export_never_shows_the_password_of_an_unreachable_hec(alerts_lake: Path) -> None:
    url = dead_endpoint(f"splunk:{SECRET}@")
    shown = keytrail("export", "--lake", alerts_lake, "--date", fixture.DAY, "--sink",
                     "splunk-hec", "--hec-url", url, "--max-attempts", "1",
                     env={"KEYTRAIL_HEC_TOKEN": "header-token"})  # fmt: skip
    assert shown.returncode == 1, shown.text  # not delivered; a rerun sends it
    assert SECRET not in shown.text
    assert files_containing(alerts_lake, SECRET) == []


def test_export_to_s3_never_shows_the_password_of_endpoint_url(alerts_lake: Path) -> None:
    shown = keytrail("export", "--lake", alerts_lake, "--date", fixture.DAY, "--sink", "s3",
                     "--s3-uri", "s3://siem-drop/keytrail", "--endpoint-url",
                     dead_endpoint(f"ops:{SECRET}@"))  # fmt: skip
    assert shown.returncode == 2, shown.text
    assert SECRET not in shown.text
    assert files_containing(alerts_lake, SECRET) == []


@pytest.mark.slow
@pytest.mark.xdist_group("prefect")  # the session's one Prefect API
def test_a_flow_run_never_shows_the_password_of_its_endpoint_parameter(
    tmp_path: Path, prefect_api: str
) -> None:
    """The flow's logs (Prefect's handlers), its failure and the CLI's line are all redacted."""
    lake = tmp_path / "lake"
    shown = keytrail("run", "--source", "s3://trail/cloudtrail", "--lake", lake, "--date",
                     "2026-11-01", "--endpoint-url", dead_endpoint(f"ops:{SECRET}@"),
                     env={"PREFECT_API_URL": prefect_api,
                          "PREFECT_LOGGING_LEVEL": "INFO"})  # fmt: skip
    assert shown.returncode == 2, shown.text
    assert "Flow run" in shown.stderr  # Prefect's own log lines were there to look at
    assert SECRET not in shown.text
    assert files_containing(tmp_path, SECRET) == []
