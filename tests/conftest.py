"""Shared fixtures: a real S3-compatible server (moto in server mode) on a free loopback port,
and one Prefect API for the whole test session.

PREFECT_HOME points at a temporary folder before anything imports Prefect, so the tests never
read or write the user's ~/.prefect.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.ingest.pipeline import IngestOptions, ingest
from tests import fuzz_profiles

REPO = Path(__file__).resolve().parent.parent

# No test may reach real AWS: dummy credentials, and no profile or instance metadata look-ups.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)

_PREFECT_HOME = tempfile.mkdtemp(prefix="keytrail-prefect-home-")
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

# Property-based tests: a modest, reproducible run by default, thousands of fresh examples under
# HYPOTHESIS_PROFILE=fuzz (make fuzz).
fuzz_profiles.load()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every property-based test ``fuzz``, so ``make fuzz`` (``-m fuzz``) finds them all.

    In xdist's workers, the tests marked ``slow`` outside any ``xdist_group`` (most of them a
    minute or two) come first: ``--dist loadgroup`` hands out its groups, then the other tests
    in this order, so the long ones start early and the short ones fill in at the end, instead
    of one worker starting a two-minute test as the other runs out of work. None of them shares
    a module fixture with the tests it moves ahead of. Without xdist the files' order stays."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not _slow_and_alone(item))


def _slow_and_alone(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("slow")) and not item.get_closest_marker("xdist_group")


class _KeepXdistGroups:
    """Make ``--dist loadgroup`` group tests by their ``xdist_group`` under pytest 9.

    pytest-xdist 3.8 marks a test's group by writing ``nodeid@group`` to ``item._nodeid``, but
    pytest 9 reads node IDs from ``item._id``, so the suffix is lost and every group is spread
    over both workers: each then builds the group's session and module fixtures (the publishing
    tests' generated lakes, the notebooks' lake, the generator's trees, ...) and starts its own
    Prefect test API. Carry the suffix over, for every group. (tests/flows/conftest.py did this
    for the ``prefect`` group alone.)"""

    @pytest.hookimpl(trylast=True)  # after xdist's own hook has written the suffix
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        try:
            from _pytest.nodeid import NodeId
        except ImportError:  # pytest < 9 reads _nodeid itself
            return
        for item in items:
            suffixed = getattr(item, "_nodeid", None)
            if isinstance(suffixed, str) and "@" in suffixed:
                item._id = NodeId.parse(suffixed)  # type: ignore[attr-defined]


@pytest.fixture(params=["compiled", "reference"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with the compiled scanner and once on the reference decoder alone
    (``KEYTRAIL_SCANNER``, which the CLI's worker processes inherit)."""
    mode = str(request.param)
    monkeypatch.setenv("KEYTRAIL_SCANNER", mode)
    return mode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server over HTTP, started once per test process."""
    port = free_port()
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert executable, "moto_server not installed: run make setup"
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/moto-api/")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"trail-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def upload(s3: Any, bucket: str, objects: dict[str, bytes], prefix: str = "") -> None:
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=data)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """Prefect's local test API, started once per test process; yields its URL.

    Tests that use it carry ``pytest.mark.xdist_group("prefect")``, so under ``pytest -n 2
    --dist loadgroup`` they share one worker and one API. The start-up wait is generous: on a
    busy 2-core host the server alone takes far longer than Prefect's default 20 s.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


SAMPLE_TRAIL = REPO / "data" / "samples" / "trail"


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    """A lake built once per test process from the embedded sample trail (14 days)."""
    lake = LocalLake(tmp_path_factory.mktemp("sample") / "lake")
    ingest(LocalSource(SAMPLE_TRAIL), lake, IngestOptions(workers=1))
    return lake


@pytest.fixture
def lake_copy(sample_lake: LocalLake, tmp_path: Path) -> LocalLake:
    """A private copy of the sample lake, for tests that write to it."""
    target = tmp_path / "lake"
    shutil.copytree(sample_lake.root, target)
    return LocalLake(target)


# The compiled scanner's first call in a fresh clone compiles its kernels (20-40 s of one core);
# every later process loads them from numba's cache on disk. Left alone, the first processes to
# scan (xdist's workers, and the ingest processes their tests start) each compile the same
# kernels at the same time, inside some test. Instead the controlling process compiles them once
# in a background process while the workers start and collect, and waits for it before the
# first test is scheduled. It is the scan of one small document that bench/scanner_start.py
# times (scan and gather, the signatures ingest uses); tests that compile on purpose (numba's
# bounds checks, the bench's own start-up figure) set NUMBA_CACHE_DIR to an empty folder.
_WARM_UP = "from analytics.ingest import scan; scan.load()"
_warm_up: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """In xdist's workers: keep the ``xdist_group`` suffixes (:class:`_KeepXdistGroups`). In its
    controller (``-n``; not a run without xdist): start the compile of the scanner's kernels in
    the background."""
    global _warm_up
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(_KeepXdistGroups(), "keytrail-keep-xdist-groups")
        return
    if not config.getoption("numprocesses", None):
        return
    if os.environ.get("KEYTRAIL_SCANNER", "").strip().lower() == "reference":
        return
    _warm_up = subprocess.Popen(
        [sys.executable, "-c", _WARM_UP],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Tests are scheduled once every worker has collected: the compile is finished first (a
    failed compile is ignored; the tests then compile, or fall back, as they would have)."""
    if _warm_up is not None and _warm_up.poll() is None:
        try:
            _warm_up.wait(timeout=300)
        except subprocess.TimeoutExpired:
            _warm_up.kill()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _warm_up is not None and _warm_up.poll() is None:
        _warm_up.kill()
        _warm_up.wait()
