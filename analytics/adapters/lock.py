"""One writer per lake: ``LAKE/_state/lock.json``, taken atomically, recoverable when stale.

The lake's writers (ingest's committer, detection, reports, export ledgers) are correct for one
writer at a time: two runs interleaving their flushes could each miss the other's event IDs and
write the same event twice, and ``remove_stale_temporaries`` of one would delete the other's
half-written files. So every command or flow that writes a lake holds this lock for its whole
run.

* Taking the lock is one ``open(O_CREAT | O_EXCL)``: of two runs racing, exactly one wins, on
  any local or NFSv3+ file system, with no daemon to run.
* The file says who holds it — host, pid, command, start time and a heartbeat — so the refusal
  names the holder and an operator can tell a live run from a dead one.
* A lock is *stale* when its process is gone (same host: the pid has exited or now belongs to
  another process started later), or when its heartbeat is older than the TTL (the only test
  possible for a holder on another host). A stale lock is broken under a short-lived second
  lock (``lock.json.break``) so two recovering runs cannot both break it and both proceed.
* Long runs call :meth:`LakeLock.refresh` between stages so the TTL can stay short.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import psutil

LOCK_NAME = "lock.json"
DEFAULT_TTL = dt.timedelta(hours=6)
# A lock file is written right after it is created; an empty or unreadable one younger than
# this is a holder still writing it, older is a holder killed in between.
_WRITE_GRACE = dt.timedelta(seconds=30)
# An empty lock file read just after its holder created it is re-read this often, this far apart.
_SETTLE_READS = 10
_SETTLE_SECONDS = 0.02
# Breaking a stale lock takes milliseconds; a break marker older than this was left by a run
# killed while breaking.
_BREAK_GRACE = dt.timedelta(seconds=60)
# psutil's create_time is rounded differently on some platforms; a reused pid starts much later.
_START_TOLERANCE_SECONDS = 1.0

# How often a run told to --wait looks at the lock again: a lock is held for minutes to hours,
# so a few seconds of delay after its release costs nothing and keeps the polling cheap.
WAIT_POLL_SECONDS = 2.0

Clock = Callable[[], dt.datetime]
T = TypeVar("T")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def lock_path(lake_root: Path) -> Path:
    return lake_root / "_state" / LOCK_NAME


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lake: enough to find the process and to judge whether it still runs."""

    host: str
    pid: int
    command: str
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    token: str
    process_started: float | None = None

    def describe(self) -> str:
        since = self.started_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.command!r} (pid {self.pid} on {self.host}, since {since})"

    def to_json(self) -> bytes:
        record: dict[str, Any] = asdict(self)
        record["started_at"] = self.started_at.isoformat()
        record["heartbeat_at"] = self.heartbeat_at.isoformat()
        return json.dumps(record, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> LockHolder:
        """Parse a lock file; raises ``ValueError`` (or ``KeyError``/``TypeError``) if mangled."""
        record = json.loads(data)
        started = dt.datetime.fromisoformat(record["started_at"])
        heartbeat = dt.datetime.fromisoformat(record.get("heartbeat_at") or record["started_at"])
        if started.tzinfo is None or heartbeat.tzinfo is None:
            raise ValueError("lock times must carry a UTC offset")
        process_started = record.get("process_started")
        return cls(
            host=str(record["host"]),
            pid=int(record["pid"]),
            command=str(record["command"]),
            started_at=started,
            heartbeat_at=heartbeat,
            token=str(record["token"]),
            process_started=float(process_started) if process_started is not None else None,
        )


class LakeLocked(RuntimeError):
    """Another run holds the lake. The message names it and says what to do."""

    def __init__(
        self,
        lake_root: Path | str,
        holder: LockHolder | None,
        detail: str = "",
        lock_location: str | None = None,
    ) -> None:
        self.lake_root = lake_root
        self.holder = holder
        where = lock_location or str(lock_path(Path(lake_root)))
        who = holder.describe() if holder else "another run"
        message = f"lake {lake_root} is locked by {who}"
        if detail:
            message += f"; {detail}"
        message += (
            f". Wait for that run to finish; if it is gone, the next run recovers the lock by "
            f"itself once its process has exited (same host) or its heartbeat is older than the "
            f"lock TTL, or delete {where} by hand."
        )
        super().__init__(message)


class LockLost(RuntimeError):
    """Our lock was broken as stale by another run (we stalled past the TTL): stop writing."""


def _process_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def stale_reason(
    holder: LockHolder, ttl: dt.timedelta, now: dt.datetime, host: str | None = None
) -> str | None:
    """Why ``holder`` no longer holds the lake, or None if it may still be running."""
    here = host or socket.gethostname()
    if holder.host == here:
        try:
            process = psutil.Process(holder.pid)
            alive = process.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            alive = False
        except psutil.Error:  # exists but not ours to inspect (AccessDenied): assume alive
            alive = True
        if not alive:
            return f"its process {holder.pid} is no longer running on {here}"
        started = _process_started(holder.pid)
        if (
            holder.process_started is not None
            and started is not None
            and abs(started - holder.process_started) > _START_TOLERANCE_SECONDS
        ):
            return f"pid {holder.pid} now belongs to another process"
    age = now - holder.heartbeat_at
    if age > ttl:
        return f"its last heartbeat was {_hours(age)} ago, more than the lock TTL of {_hours(ttl)}"
    return None


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


def read_holder(lake_root: Path) -> LockHolder | None:
    """The current holder of ``lake_root``, or None when unlocked (or the file is unreadable)."""
    try:
        return LockHolder.from_json(lock_path(lake_root).read_bytes())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None


def check_unlocked(lake_root: Path, ttl: dt.timedelta = DEFAULT_TTL) -> None:
    """Raise :class:`LakeLocked` if a live run holds the lake; a fast pre-flight, takes nothing.

    Callers that start something slow (a Prefect server) use it to refuse at once; the real
    exclusion is still :class:`LakeLock`, taken afterwards.
    """
    holder = read_holder(lake_root)
    if holder is not None and stale_reason(holder, ttl, _utc_now()) is None:
        raise LakeLocked(lake_root, holder)


class LakeLock:
    """The lake's write lock as a context manager::

        with LakeLock(lake.root, "keytrail run --date 2026-11-28") as lock:
            ...  # write
            lock.refresh()  # between long stages

    ``recovered`` says whose stale lock was broken to take this one (for the run's log).
    """

    def __init__(
        self,
        lake_root: Path,
        command: str,
        ttl: dt.timedelta = DEFAULT_TTL,
        *,
        clock: Clock = _utc_now,
    ) -> None:
        if ttl <= dt.timedelta(0):
            raise ValueError("lock TTL must be positive")
        self.lake_root = lake_root
        self.command = command
        self.ttl = ttl
        self.clock = clock
        self.holder: LockHolder | None = None
        self.recovered: tuple[LockHolder | None, str] | None = None

    @property
    def path(self) -> Path:
        return lock_path(self.lake_root)

    def _new_holder(self) -> LockHolder:
        now = self.clock()
        pid = os.getpid()
        return LockHolder(
            host=socket.gethostname(),
            pid=pid,
            command=self.command,
            started_at=now,
            heartbeat_at=now,
            token=uuid.uuid4().hex,
            process_started=_process_started(pid),
        )

    def acquire(self) -> LockHolder:
        """Take the lock or raise :class:`LakeLocked`; breaks a stale lock first."""
        if self.holder is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            holder = self._new_holder()
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_if_stale()
                continue
            try:
                os.write(fd, holder.to_json())
                os.fsync(fd)
            finally:
                os.close(fd)
            self.holder = holder
            return holder
        raise LakeLocked(self.lake_root, read_holder(self.lake_root),
                         "it changed hands while this run was trying to take it")  # fmt: skip

    def _break_if_stale(self) -> None:
        """Remove the current lock file if it is stale; raise :class:`LakeLocked` if it is not."""
        for attempt in range(_SETTLE_READS):
            try:
                raw = self.path.read_bytes()
                mtime = dt.datetime.fromtimestamp(self.path.stat().st_mtime, dt.UTC)
            except FileNotFoundError:
                return  # released meanwhile: try again
            try:
                holder: LockHolder | None = LockHolder.from_json(raw)
            except (ValueError, KeyError, TypeError):
                holder = None
            if holder is not None or attempt == _SETTLE_READS - 1:
                break
            # A holder writes its file right after creating it: read again in a moment, so the
            # refusal can name it rather than "another run".
            time.sleep(_SETTLE_SECONDS)
        now = self.clock()
        if holder is None:
            if now - mtime < _WRITE_GRACE:
                raise LakeLocked(self.lake_root, None, "its lock file is being written")
            reason = "its lock file is unreadable (a run killed while taking it)"
        else:
            found = stale_reason(holder, self.ttl, now)
            if found is None:
                raise LakeLocked(self.lake_root, holder)
            reason = found
        self._remove_exact(raw, holder, reason)

    def _remove_exact(self, raw: bytes, holder: LockHolder | None, reason: str) -> None:
        """Delete the lock file only if it still holds ``raw``, under the break marker."""
        marker = self.path.with_name(LOCK_NAME + ".break")
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                age = self.clock() - dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.UTC)
            except FileNotFoundError:
                return
            if age > _BREAK_GRACE:
                marker.unlink(missing_ok=True)
                return
            busy = "another run is recovering this stale lock right now"
            raise LakeLocked(self.lake_root, holder, busy) from None
        try:
            os.close(fd)
            try:
                current = self.path.read_bytes()
            except FileNotFoundError:
                return
            if current == raw:
                self.path.unlink()
                self.recovered = (holder, reason)
        finally:
            marker.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Move the heartbeat forward; raises :class:`LockLost` if the lock is no longer ours."""
        if self.holder is None:
            raise RuntimeError("refresh() before acquire()")
        current = read_holder(self.lake_root)
        if current is None or current.token != self.holder.token:
            other = current.describe() if current else "nobody"
            raise LockLost(
                f"the lock on {self.lake_root} was taken over as stale (now held by {other}); "
                f"this run stalled longer than the lock TTL ({_hours(self.ttl)}) and must stop"
            )
        updated = LockHolder(**{**asdict(self.holder), "heartbeat_at": self.clock()})
        temporary = self.path.with_name(f"{LOCK_NAME}.{updated.token}.refresh")
        temporary.write_bytes(updated.to_json())
        os.replace(temporary, self.path)
        self.holder = updated

    def release(self) -> None:
        """Remove the lock file if it is still ours (never someone else's)."""
        if self.holder is None:
            return
        current = read_holder(self.lake_root)
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        self.holder = None

    def __enter__(self) -> LakeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def acquire_waiting(
    acquire: Callable[[], T],
    wait_seconds: float,
    *,
    on_wait: Callable[[LakeLocked], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``acquire`` (a lock's ``acquire``) until it stops raising :class:`LakeLocked`, for at
    most ``wait_seconds``; then let the last refusal through.

    ``on_wait`` hears the first refusal once, so the run can say whom it is waiting for. Stale
    locks are still recovered by ``acquire`` itself on every attempt.
    """
    deadline = monotonic() + max(0.0, wait_seconds)
    told = False
    while True:
        try:
            return acquire()
        except LakeLocked as refusal:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise
            if on_wait is not None and not told:
                on_wait(refusal)
                told = True
            sleep(min(WAIT_POLL_SECONDS, remaining))


class Heartbeat:
    """Refresh a lock from a background thread while a long command runs."""

    def __init__(self, refresh: Callable[[], None], every: dt.timedelta) -> None:
        self._refresh = refresh
        self._every = every.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keytrail-lock", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._refresh()
            except BaseException as exc:  # reported when the command ends
                self.error = exc
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
