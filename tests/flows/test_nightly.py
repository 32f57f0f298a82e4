"""The nightly flow over the sample trail: the same lake as the CLI stages, idempotent, robust."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from tests.flows import helpers
from tests.flows.conftest import FIRST_DAY, LAST_DAY, SAMPLES, copy_days
from tests.flows.helpers import invoke

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_api")]


def run_json(*args: object) -> dict[str, Any]:
    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="session")
def nightly_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    lake = tmp_path_factory.mktemp("flow") / "lake"
    result = run_json("--source", SAMPLES, "--lake", lake, "--date", LAST_DAY,
                      "--ingest-from", FIRST_DAY)  # fmt: skip
    return lake, result


@pytest.fixture(scope="session")
def hand_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same work done stage by stage with the plain commands."""
    lake = tmp_path_factory.mktemp("hand") / "lake"
    for args in (
        ["ingest", SAMPLES, "--lake", lake, "--start", FIRST_DAY, "--end", LAST_DAY,
         "--workers", "1"],
        ["detect", "--lake", lake, "--date", LAST_DAY],
        ["report", "--lake", lake, "--date", LAST_DAY],
        ["export", "--lake", lake, "--date", LAST_DAY, "--sink", "ocsf-file"],
    ):  # fmt: skip
        result = invoke(*args)
        assert result.exit_code == 0, result.output
    return lake


def test_nightly_flow_gives_the_same_lake_and_alerts_as_the_cli_stages(
    nightly_lake: tuple[Path, dict[str, Any]], hand_lake: Path
) -> None:
    lake, result = nightly_lake
    helpers.assert_same_lake(lake, hand_lake, [LAST_DAY])
    day = result["days"][0]
    assert day["alerts"] == helpers.alerts(hand_lake, LAST_DAY).height > 0
    ocsf = f"ocsf/event_date={LAST_DAY}/alerts.ocsf.jsonl"
    assert (lake / ocsf).read_bytes() == (hand_lake / ocsf).read_bytes()
    for table in ("key_usage", "key_usage_by_actor", "rotation", "policy_changes", "keys"):
        name = f"reports/{LAST_DAY}/{table}.parquet"
        assert_frame_equal(helpers.pl.read_parquet(lake / name),
                           helpers.pl.read_parquet(hand_lake / name))  # fmt: skip
    assert Path(day["report_html"]) == lake / "reports" / LAST_DAY / "report.html"
    assert result["ingest"]["events_written"] == helpers.events(hand_lake).height
    assert not (lake / "_state" / "lock.json").exists()


def test_nightly_flow_leaves_a_summary_and_an_alerts_table_in_prefect(
    nightly_lake: tuple[Path, dict[str, Any]],
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _, result = nightly_lake
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result["flow_run_id"]]))
        )
    by_key = {artifact.key: artifact for artifact in found}
    summary = str(by_key["keytrail-nightly-summary"].data)
    assert f"{result['ingest']['events_written']:,}" in summary
    assert f"{LAST_DAY}: {result['days'][0]['alerts']} alert(s)" in summary
    table = by_key["keytrail-nightly-alerts"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert len(rows) == result["days"][0]["alerts"]
    assert {row["detector"] for row in rows} == set(result["days"][0]["alerts_by_detector"])


def test_a_second_nightly_run_changes_nothing(
    nightly_lake: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(nightly_lake[0], lake)
    before = helpers.snapshot(lake)
    result = run_json("--source", SAMPLES, "--lake", lake, "--date", LAST_DAY,
                      "--ingest-from", FIRST_DAY)  # fmt: skip
    assert helpers.snapshot(lake) == before
    assert result["ingest"]["objects_skipped"] == result["ingest"]["objects_seen"] > 0
    assert result["ingest"]["events_written"] == 0
    assert result["days"][0]["skipped"] is True


def _corrupt_tree(target: Path) -> tuple[Path, list[str]]:
    tree = copy_days(["2026-11-13", "2026-11-14", "2026-11-15"], target)
    folder = next(tree.glob("AWSLogs/*/CloudTrail/*/2026/11/14"))
    account, region = folder.parts[-6], folder.parts[-4]
    bad = [
        folder / f"{account}_CloudTrail_{region}_20261114T2355Z_notgzip0000000a.json.gz",
        folder / f"{account}_CloudTrail_{region}_20261114T2356Z_truncated00000b.json.gz",
    ]
    bad[0].write_bytes(b'{"Records": [')
    whole = gzip.compress(b'{"Records": [' + b'{"eventID": "x"},' * 500 + b"{}]}")
    bad[1].write_bytes(whole[: len(whole) // 2])
    return tree, [str(path.relative_to(tree)) for path in bad]


def test_a_corrupt_object_is_quarantined_and_the_run_completes(
    tmp_path: Path, short_window: Path
) -> None:
    from flows.nightly import nightly

    tree, bad = _corrupt_tree(tmp_path / "trail")
    lake = tmp_path / "lake"
    result = nightly(source=str(tree), lake=str(lake), date=LAST_DAY, config=str(short_window))
    ingest = result["ingest"]
    assert ingest["objects_quarantined"] == 2
    assert sorted(line.split(": ")[0] for line in ingest["quarantined"]) == sorted(bad)
    assert {record["source_object"] for record in helpers.quarantine(lake).values()} == set(bad)
    assert result["days"][0]["skipped"] is False
    assert (lake / "reports" / LAST_DAY / "report.html").exists()


def test_the_dask_runner_on_two_local_workers_gives_the_same_lake(
    tmp_path: Path, short_window: Path
) -> None:
    from prefect_dask.task_runners import DaskTaskRunner

    from flows.nightly import nightly

    tree = copy_days(["2026-11-13", "2026-11-14", "2026-11-15"], tmp_path / "trail")
    threads, dask = tmp_path / "threads", tmp_path / "dask"
    parameters = {"source": str(tree), "date": "2026-11-13", "config": str(short_window)}
    nightly(lake=str(threads), **parameters)
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True}
    )
    result = nightly.with_options(task_runner=runner)(lake=str(dask), **parameters)
    helpers.assert_same_lake(threads, dask, ["2026-11-13"])
    assert result["ingest"]["events_written"] > 0


def test_a_stage_failure_fails_the_run_with_its_reason(tmp_path: Path) -> None:
    from flows.nightly import StageFailed, nightly

    with pytest.raises(StageFailed, match=r"ingest failed: source folder .*missing does not exist"):
        nightly(source=str(tmp_path / "missing"), lake=str(tmp_path / "lake"), date=LAST_DAY)
    assert not (tmp_path / "lake" / "_state" / "lock.json").exists()


def test_run_refuses_a_missing_source_before_the_flow_starts(tmp_path: Path) -> None:
    result = invoke("run", "--source", tmp_path / "missing", "--lake", tmp_path / "lake",
                    "--date", LAST_DAY)  # fmt: skip
    assert result.exit_code == 2
    assert "missing does not exist" in result.output
    assert not (tmp_path / "lake").exists()


HOLD_LOCK = (
    "import sys, time; from pathlib import Path; "
    "from analytics.adapters.lock import LakeLock; "
    "LakeLock(Path(sys.argv[1]), 'keytrail run --date 2026-11-14 (other)').acquire(); "
    "print('held', flush=True); time.sleep(120)"
)


@contextmanager
def lock_held_by_another_run(lake: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lake's lock (as 'keytrail run ... (other)') until the block
    ends, when it is killed: its lock stays behind, stale, for the next run to recover."""
    other = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lake)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        yield other
    finally:
        other.kill()
        other.wait()


def test_a_concurrent_run_is_refused_and_a_killed_runs_lock_recovered(
    tmp_path: Path, short_window: Path
) -> None:
    from analytics.adapters.lock import LakeLocked
    from flows.nightly import nightly

    tree = copy_days(["2026-11-14", "2026-11-15"], tmp_path / "trail")
    lake = tmp_path / "lake"
    with lock_held_by_another_run(lake) as other:
        refused = invoke("run", "--source", tree, "--lake", lake, "--date", LAST_DAY)
        assert refused.exit_code == 2
        assert f"(pid {other.pid} on" in refused.output
        assert "'keytrail run --date 2026-11-14 (other)'" in refused.output
        with pytest.raises(LakeLocked, match=rf"\(other\)' \(pid {other.pid} on"):
            nightly(source=str(tree), lake=str(lake), date=LAST_DAY)
        assert not (lake / "events").exists()
    assert (lake / "_state" / "lock.json").exists()  # left behind by the killed run
    result = nightly(source=str(tree), lake=str(lake), date=LAST_DAY, config=str(short_window))
    assert result["ingest"]["events_written"] > 0
    assert not (lake / "_state" / "lock.json").exists()


def test_a_nightly_run_computes_features_and_baselines_once(
    tmp_path: Path, short_window: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The features, baselines and detect stages share one computation: each stage logs what
    the next one uses, instead of every stage working the window out again."""
    from analytics.detect import baselines, features
    from flows.nightly import nightly

    computed: list[Any] = []
    builds: list[Any] = []
    compute_day, build = features.compute_day, baselines.build

    def counted_compute_day(events: Any, day: Any) -> Any:
        if events.height:
            computed.append(day)
        return compute_day(events, day)

    def counted_build(*args: Any, **kwargs: Any) -> Any:
        builds.append(args[1])
        return build(*args, **kwargs)

    monkeypatch.setattr(features, "compute_day", counted_compute_day)
    monkeypatch.setattr(baselines, "build", counted_build)
    tree = copy_days(["2026-11-12", "2026-11-13", "2026-11-14"], tmp_path / "trail")
    result = nightly(source=str(tree), lake=str(tmp_path / "lake"), date="2026-11-13",
                     config=str(short_window))  # fmt: skip
    assert result["days"][0]["skipped"] is False
    assert len(computed) == len(set(computed)) > 0, computed  # no day's features twice
    assert [str(day) for day in builds] == ["2026-11-13"]


def test_run_with_wait_waits_for_the_lock_then_runs(
    tmp_path: Path, short_window: Path, prefect_api: str
) -> None:
    """``keytrail run --wait`` says whom it waits for, and runs once the holder is gone (here
    killed, so its lock is recovered as stale) instead of refusing at once."""
    import os

    tree = copy_days(["2026-11-14", "2026-11-15"], tmp_path / "trail")
    lake = tmp_path / "lake"
    with lock_held_by_another_run(lake):
        run = subprocess.Popen(
            [sys.executable, "-m", "flows", "run", "--source", str(tree), "--lake", str(lake),
             "--date", LAST_DAY, "--config", str(short_window), "--wait", "600"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PREFECT_API_URL": prefect_api},
        )  # fmt: skip
        assert run.stderr is not None
        before = []
        for line in run.stderr:
            before.append(line)
            if "waiting for the lock" in line:
                break
    _out, err = run.communicate(timeout=900)
    assert run.returncode == 0, "".join(before) + err
    assert "held by 'keytrail run --date 2026-11-14 (other)'" in "".join(before)
    assert "recovered a stale lock" in err
    assert (lake / "reports" / LAST_DAY / "report.html").is_file()
