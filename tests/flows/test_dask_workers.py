"""The nightly flow on a real Dask cluster whose workers share no disk with the flow.

Two worker processes, each with a private local directory, read an S3 trail and stage their
events in an S3 lake (moto's server over HTTP), and merge each event day into its day file
there; one worker is killed with SIGKILL while it runs a read task. The run must still finish
with every record in the lake exactly once and raise the alerts the default (threads) runner
raises on the same trail; the flow's process keeps nothing of the lake on its disk.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import upload
from tests.flows import helpers
from tests.flows.conftest import LAST_DAY, copy_days
from tests.flows.helpers import invoke

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]


class _KillOneBusyWorker(threading.Thread):
    """Watches the scheduler; the first time a worker is processing a task, SIGKILLs it."""

    def __init__(self, client: Any) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.killed: tuple[str, int, list[str]] | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            busy = {worker: keys for worker, keys in self.client.processing().items() if keys}
            if busy:
                worker, keys = sorted(busy.items())[0]
                pid = self.client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                self.killed = (worker, pid, [str(k) for k in keys])
                return
            self.stop.wait(0.01)


def test_killing_a_dask_worker_mid_ingest_loses_and_duplicates_nothing(
    s3_endpoint: str, tmp_path: Path, short_window: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client, LocalCluster, Nanny, get_task_stream
    from distributed.utils import key_split

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "client-cache"))
    s3 = boto3.client("s3", region_name="us-east-1")
    for name in ("dask-trail", "dask-lake"):
        s3.create_bucket(Bucket=name)
    tree = copy_days(["2026-11-12", "2026-11-13", "2026-11-14", "2026-11-15"], tmp_path / "trail")
    upload(s3, "dask-trail", {str(p.relative_to(tree)): p.read_bytes()
                              for p in tree.rglob("*.json.gz")})  # fmt: skip
    common = ["--source", "s3://dask-trail", "--date", LAST_DAY, "--ingest-from", "2026-11-12",
              "--config", short_window, "--json"]  # fmt: skip

    # Each worker gets a private local directory: nothing it writes there is seen by the flow.
    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    for index in range(2):
        options = {"nthreads": 1, "local_directory": str(tmp_path / f"worker-{index}")}
        cluster.worker_spec[f"private-{index}"] = {"cls": Nanny, "options": options}
    cluster.scale(2)
    client = Client(cluster)
    try:
        client.wait_for_workers(2)
        killer = _KillOneBusyWorker(client)
        killer.start()
        try:
            with get_task_stream(client) as stream:
                run = invoke("run", "--lake", "s3://dask-lake/kt", "--task-runner", "dask",
                             "--dask-address", cluster.scheduler_address, *common)  # fmt: skip
        finally:
            killer.stop.set()
            killer.join()
        assert run.exit_code == 0, run.output
        assert killer.killed is not None, "no worker was ever busy: nothing was tested"
        worker_dirs = {tmp_path / "worker-0", tmp_path / "worker-1"}
        assert all(d.is_dir() for d in worker_dirs)
        ran = {key_split(item["key"]) for item in stream.data}
        assert {"read_partition", "merge_day"} <= ran, ran  # the day merges ran on the workers
        assert not (tmp_path / "client-cache").exists()  # the flow kept nothing of the lake
    finally:
        client.close()
        cluster.close()
    result = json.loads(run.stdout)
    assert result["ingest"]["events_written"] > 0

    threads = tmp_path / "threads"
    local = invoke("run", "--lake", threads, *common)
    assert local.exit_code == 0, local.output
    copied = helpers.download_lake(s3, "dask-lake", "kt/", tmp_path / "copied")
    assert not (copied / "_staging").exists()  # every staged object was committed and removed
    helpers.assert_same_lake(copied, threads, [LAST_DAY])
    events = helpers.events(copied)
    assert events.get_column("event_id").n_unique() == events.height
    assert (
        result["ingest"]["events_written"] == json.loads(local.stdout)["ingest"]["events_written"]
    )
