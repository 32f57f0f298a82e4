"""Every command that writes a lake holds its lock, on a local folder as on S3; readers do not.

Two ``keytrail ingest`` runs on one local lake used to interleave and write every event twice.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import polars as pl
import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.lock import lock_path
from tests.lake.conftest import LAST_DAY, SAMPLES, Holder, keytrail_process


def _events(lake: Path) -> pl.DataFrame:
    return pl.read_parquet(lake / "events" / "*" / "*.parquet", columns=["event_id"])


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate()
    return process.returncode, out, " ".join(err.split())


def test_ingest_is_refused_naming_the_run_that_holds_the_lake(
    tmp_path: Path, hold: type[Holder]
) -> None:
    lake = tmp_path / "lake"
    holder = hold(lake, "keytrail ingest ./other-trail")
    code, _, err = _finish(keytrail_process("ingest", SAMPLES, "--lake", lake, "--workers", "1"))
    assert code == 2, err
    assert "is locked by 'keytrail ingest ./other-trail'" in err
    assert f"pid {holder.pid} on {socket.gethostname()}" in err
    assert "since 20" in err
    assert not (lake / "events").exists()
    assert lock_path(lake).exists(), "the refused run must leave the holder's lock alone"


def test_ingest_with_wait_starts_once_the_holder_is_done(
    tmp_path: Path, hold: type[Holder], sample_lake: LocalLake
) -> None:
    lake = tmp_path / "lake"
    holder = hold(lake, "keytrail ingest ./other-trail")
    waiting = keytrail_process(
        "ingest", SAMPLES, "--lake", lake, "--workers", "1", "--wait", "600", "--json"
    )
    assert waiting.stderr is not None
    line = waiting.stderr.readline()
    assert "waiting for the lock" in line and "keytrail ingest ./other-trail" in line, line
    holder.release()
    code, _, err = _finish(waiting)
    assert code == 0, err
    ids = _events(lake)
    assert ids.height == _events(sample_lake.root).height
    assert ids.get_column("event_id").n_unique() == ids.height
    assert not lock_path(lake).exists()


def test_two_ingests_started_together_write_every_event_once(
    tmp_path: Path, sample_lake: LocalLake
) -> None:
    lake = tmp_path / "lake"
    args = ("ingest", SAMPLES, "--lake", lake, "--workers", "1", "--checkpoint-events", "500")
    first, second = keytrail_process(*args), keytrail_process(*args)
    outcomes = [_finish(first), _finish(second)]
    assert sorted(code for code, _, _ in outcomes) in ([0, 0], [0, 2]), outcomes
    for code, _, err in outcomes:
        if code == 2:
            assert "is locked by 'keytrail ingest" in err, err
    ids = _events(lake)
    assert ids.height == _events(sample_lake.root).height
    assert ids.get_column("event_id").n_unique() == ids.height


@pytest.mark.parametrize(
    "command",
    [
        ("detect", "--date", LAST_DAY),
        ("report", "--date", LAST_DAY),
        ("export", "--date", LAST_DAY, "--sink", "ocsf-file"),
    ],
)
def test_every_writing_command_is_refused_while_the_lake_is_held(
    lake_copy: LocalLake, hold: type[Holder], command: tuple[str, ...]
) -> None:
    hold(lake_copy.root, "keytrail run --date 2026-11-14")
    code, _, err = _finish(keytrail_process(command[0], "--lake", lake_copy.root, *command[1:]))
    assert code == 2, err
    assert "is locked by 'keytrail run --date 2026-11-14'" in err
    assert not (lake_copy.root / "alerts").exists()
    assert not (lake_copy.root / "reports").exists()


def test_reading_commands_take_no_lock(lake_copy: LocalLake, hold: type[Holder]) -> None:
    hold(lake_copy.root, "keytrail run --date 2026-11-14")
    code, _, err = _finish(
        keytrail_process("detect", "--lake", lake_copy.root, "--date", LAST_DAY, "--dry-run")
    )
    assert code == 0, err


@pytest.mark.parametrize("command", ["ingest", "detect", "report", "export"])
def test_writing_commands_offer_wait(command: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--wait" in result.output and "SECONDS" in result.output


def test_a_writing_command_on_a_mistyped_lake_leaves_no_folder_behind(tmp_path: Path) -> None:
    code, _, err = _finish(
        keytrail_process("detect", "--lake", tmp_path / "typo", "--date", LAST_DAY)
    )
    assert code == 2 and f"lake {tmp_path / 'typo'} not found" in err
    assert not (tmp_path / "typo").exists()


def test_a_lock_left_by_a_killed_run_is_recovered_by_the_next_ingest(
    tmp_path: Path, hold: type[Holder]
) -> None:
    lake = tmp_path / "lake"
    holder = hold(lake, "keytrail ingest ./killed")
    holder.process.kill()
    holder.process.wait()
    assert lock_path(lake).exists()
    code, _, err = _finish(
        keytrail_process("ingest", SAMPLES, "--lake", lake, "--workers", "1", "--json")
    )
    assert code == 0, err
    assert "recovered a stale lock" in err and "'keytrail ingest ./killed'" in err
    assert f"its process {holder.pid} is no longer running" in err
    assert not lock_path(lake).exists()
