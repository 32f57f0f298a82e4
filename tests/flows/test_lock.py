"""The lake lock: one writer at a time, a refusal that names the holder, recovery when stale."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from analytics.adapters.lock import (
    WAIT_POLL_SECONDS,
    LakeLock,
    LakeLocked,
    LockHolder,
    LockLost,
    acquire_waiting,
    check_unlocked,
    lock_path,
    read_holder,
)

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)


def _write_holder(lake: Path, **changes: object) -> LockHolder:
    fields: dict[str, object] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": "keytrail run --date 2026-11-28",
        "started_at": NOW,
        "heartbeat_at": NOW,
        "token": "a" * 32,
        "process_started": None,
    }
    fields.update(changes)
    holder = LockHolder(**fields)  # type: ignore[arg-type]
    path = lock_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(holder.to_json())
    return holder


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_file_says_who_holds_the_lake(tmp_path: Path) -> None:
    with LakeLock(tmp_path, "keytrail run --date 2026-11-28"):
        record = json.loads(lock_path(tmp_path).read_text())
        assert record["pid"] == os.getpid()
        assert record["host"] == socket.gethostname()
        assert record["command"] == "keytrail run --date 2026-11-28"
        assert dt.datetime.fromisoformat(record["started_at"]).tzinfo is not None
    assert not lock_path(tmp_path).exists()


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path: Path) -> None:
    with LakeLock(tmp_path, "keytrail run --date 2026-11-28"):
        with pytest.raises(LakeLocked) as refused:
            LakeLock(tmp_path, "keytrail ingest").acquire()
        with pytest.raises(LakeLocked):
            check_unlocked(tmp_path)
    message = str(refused.value)
    assert "'keytrail run --date 2026-11-28'" in message
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert str(lock_path(tmp_path)) in message
    assert refused.value.holder is not None


def test_a_lock_left_by_a_dead_process_is_recovered(tmp_path: Path) -> None:
    dead = _write_holder(tmp_path, pid=_dead_pid())
    check_unlocked(tmp_path)  # a stale lock does not block the pre-flight check
    lock = LakeLock(tmp_path, "keytrail run", clock=lambda: NOW)
    with lock:
        assert lock.recovered is not None
        holder, reason = lock.recovered
        assert holder == dead
        assert "no longer running" in reason
        assert read_holder(tmp_path) == lock.holder


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path: Path) -> None:
    # Our own pid is alive, but the lock says its process started at another time.
    _write_holder(tmp_path, process_started=12345.0)
    with LakeLock(tmp_path, "keytrail run", clock=lambda: NOW) as lock:
        assert lock.recovered is not None
        assert "another process" in lock.recovered[1]


def test_a_holder_on_another_host_is_stale_only_after_the_ttl(tmp_path: Path) -> None:
    _write_holder(tmp_path, host="worker-7", pid=1)
    within = NOW + dt.timedelta(hours=5)
    with pytest.raises(LakeLocked, match="pid 1 on worker-7"):
        LakeLock(tmp_path, "keytrail run", dt.timedelta(hours=6), clock=lambda: within).acquire()
    after = NOW + dt.timedelta(hours=7)
    lock = LakeLock(tmp_path, "keytrail run", dt.timedelta(hours=6), clock=lambda: after)
    with lock:
        assert lock.recovered is not None
        assert "more than the lock TTL" in lock.recovered[1]


def test_refresh_moves_the_heartbeat_and_notices_a_takeover(tmp_path: Path) -> None:
    times = iter([NOW, NOW + dt.timedelta(hours=1)])
    lock = LakeLock(tmp_path, "keytrail backfill", clock=lambda: next(times))
    lock.acquire()
    lock.refresh()
    holder = read_holder(tmp_path)
    assert holder is not None and holder.heartbeat_at == NOW + dt.timedelta(hours=1)
    assert holder.started_at == NOW
    _write_holder(tmp_path, token="b" * 32, command="keytrail run (took over)")
    with pytest.raises(LockLost, match="took over"):
        lock.refresh()
    lock.release()  # not ours any more: left alone
    assert read_holder(tmp_path) is not None


def test_a_half_written_lock_file_waits_then_is_recovered(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    with pytest.raises(LakeLocked, match="being written"):
        LakeLock(tmp_path, "keytrail run", clock=lambda: written).acquire()
    later = written + dt.timedelta(minutes=5)
    with LakeLock(tmp_path, "keytrail run", clock=lambda: later) as lock:
        assert lock.recovered is not None and "unreadable" in lock.recovered[1]


def test_two_runs_cannot_both_break_the_same_stale_lock(tmp_path: Path) -> None:
    _write_holder(tmp_path, pid=_dead_pid())
    marker = lock_path(tmp_path).with_name("lock.json.break")
    marker.write_bytes(b"")
    just_now = dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.UTC)
    with pytest.raises(LakeLocked, match="recovering this stale lock"):
        LakeLock(tmp_path, "keytrail run", clock=lambda: just_now).acquire()


def test_a_killed_run_leaves_a_lock_the_next_run_recovers(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; "
         "from analytics.adapters.lock import LakeLock; "
         "LakeLock(Path(sys.argv[1]), 'keytrail run (doomed)').acquire(); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LakeLocked, match=rf"'keytrail run \(doomed\)' \(pid {holder.pid} "):
            LakeLock(tmp_path, "keytrail run").acquire()
    finally:
        holder.kill()
        holder.wait()
    with LakeLock(tmp_path, "keytrail run") as lock:
        assert lock.recovered is not None
        assert f"process {holder.pid} is no longer running" in lock.recovered[1]


class _FakeClock:
    """``sleep`` and ``monotonic`` for acquire_waiting: time moves only when it sleeps."""

    def __init__(self, on_sleep: object = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if callable(self.on_sleep):
            self.on_sleep()

    def monotonic(self) -> float:
        return self.now


def test_waiting_takes_the_lock_once_the_holder_lets_go(tmp_path: Path) -> None:
    holder = LakeLock(tmp_path, "keytrail ingest ./trail")
    holder.acquire()
    clock = _FakeClock(on_sleep=holder.release)
    heard: list[LakeLocked] = []
    waiter = LakeLock(tmp_path, "keytrail detect 2026-11-28")
    taken = acquire_waiting(waiter.acquire, 60, on_wait=heard.append, sleep=clock.sleep,
                            monotonic=clock.monotonic)  # fmt: skip
    assert taken.command == "keytrail detect 2026-11-28"
    assert read_holder(tmp_path) == taken
    assert len(heard) == 1 and heard[0].holder is not None
    assert heard[0].holder.command == "keytrail ingest ./trail"
    assert clock.sleeps == [WAIT_POLL_SECONDS]
    waiter.release()


def test_waiting_gives_up_after_the_wait_naming_the_holder(tmp_path: Path) -> None:
    with LakeLock(tmp_path, "keytrail ingest ./trail"):
        clock = _FakeClock()
        waiter = LakeLock(tmp_path, "keytrail detect 2026-11-28")
        with pytest.raises(LakeLocked, match=r"locked by 'keytrail ingest \./trail'"):
            acquire_waiting(waiter.acquire, 5, sleep=clock.sleep, monotonic=clock.monotonic)
        assert sum(clock.sleeps) == 5 and max(clock.sleeps) <= WAIT_POLL_SECONDS
        assert waiter.holder is None


def test_no_wait_refuses_at_once(tmp_path: Path) -> None:
    with LakeLock(tmp_path, "keytrail ingest ./trail"):
        clock = _FakeClock()
        with pytest.raises(LakeLocked):
            acquire_waiting(LakeLock(tmp_path, "x").acquire, 0, sleep=clock.sleep,
                            monotonic=clock.monotonic)  # fmt: skip
        assert clock.sleeps == []


def test_waiting_recovers_a_lock_left_by_a_dead_process(tmp_path: Path) -> None:
    _write_holder(tmp_path, pid=_dead_pid())
    clock = _FakeClock()
    waiter = LakeLock(tmp_path, "keytrail ingest ./trail")
    acquire_waiting(waiter.acquire, 0, sleep=clock.sleep, monotonic=clock.monotonic)
    assert waiter.recovered is not None and "no longer running" in waiter.recovered[1]
    waiter.release()


def test_a_lock_file_caught_being_written_is_read_again_to_name_its_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder creates the file, then writes it: a refusal in between still names it."""
    from analytics.adapters import lock as lock_module

    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    holder = LockHolder(socket.gethostname(), os.getpid(), "keytrail ingest ./trail",
                        NOW, NOW, "b" * 32, None)  # fmt: skip

    def holder_finishes_writing(_seconds: float) -> None:
        path.write_bytes(holder.to_json())

    monkeypatch.setattr(lock_module.time, "sleep", holder_finishes_writing)
    with pytest.raises(LakeLocked) as refused:
        LakeLock(tmp_path, "keytrail detect 2026-11-28", clock=lambda: NOW).acquire()
    assert refused.value.holder == holder
    assert "locked by 'keytrail ingest ./trail'" in str(refused.value)
