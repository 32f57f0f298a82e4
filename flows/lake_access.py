"""Opening the lake a command names: a local folder as it is, an ``s3://`` lake in place or
through a mirror.

Every command and flow goes through :func:`working_lake` or :class:`HeldLake`, so a lake is
locked the same way everywhere: a command that writes holds the lake's lock for its whole run
(a local lake's ``_state/lock.json``; for an S3 lake the bucket's lock, and its mirror's when it
has one), readers take none. ``detect``, ``report``, ``export`` and ``evaluate`` work on an S3
lake in place (:func:`in_place_s3_lake`, :mod:`analytics.adapters.lake_fs`). ``ingest``,
``lake check`` and the nightly flow still pull it, work on the mirror and push it
(:mod:`analytics.adapters.s3_lake` says how). Pushing happens when the work ends, also after
an ordinary error: every lake write is atomic, so whatever the mirror holds is a consistent
lake, and an ingest's committed progress is worth keeping. It does not happen when the run
lost its lock or the sync itself failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analytics.adapters.lake import LocalLake
from analytics.adapters.lock import (
    DEFAULT_TTL,
    Heartbeat,
    LakeLock,
    LakeLocked,
    LockLost,
    acquire_waiting,
)

LAKE_KMS_KEY_ENV = "KEYTRAIL_LAKE_KMS_KEY"
LAKE_HELP = (
    "Lake: a folder, or s3://bucket/prefix (written with SSE-KMS; detect, report, export and "
    "evaluate read it in place, ingest and lake check through a local mirror under "
    "KEYTRAIL_CACHE_DIR, default ~/.cache/keytrail)."
)
LOCK_WAIT_HELP = (
    "Seconds to wait for another run's lock on the lake to be released; default 0: refuse at "
    "once (exit 2) naming the run that holds it."
)
ENDPOINT_URL_HELP = (
    "Endpoint of the AWS APIs the command calls (an s3:// lake or trail, KMS, AWS sinks), e.g. "
    "http://127.0.0.1:9000 for an S3-compatible store; default: AWS_ENDPOINT_URL_S3 or "
    "AWS_ENDPOINT_URL if set, else AWS."
)
LAKE_KMS_KEY_HELP = (
    "KMS key (ID, ARN or alias) that encrypts what keytrail writes to an s3:// lake; "
    "default: the AWS managed key aws/s3."
)

if TYPE_CHECKING:  # boto3 is imported only when a lake is in S3
    from analytics.adapters.s3_lake import S3LakeLock, S3LakeMirror

Log = Callable[[str], None]
_LOGGER = logging.getLogger("keytrail")

LakeOption = Annotated[str, typer.Option("--lake", help=LAKE_HELP)]
EndpointUrlOption = Annotated[str | None, typer.Option("--endpoint-url", help=ENDPOINT_URL_HELP)]
LockWaitOption = Annotated[
    float, typer.Option("--wait", min=0, metavar="SECONDS", help=LOCK_WAIT_HELP)
]
LakeKmsKeyOption = Annotated[
    str | None, typer.Option("--lake-kms-key", envvar=LAKE_KMS_KEY_ENV, help=LAKE_KMS_KEY_HELP)
]


class _Every:
    """A sync progress callback that logs a running count every ``seconds`` (a first pull of a
    large lake takes minutes; silence would look like a hang)."""

    def __init__(self, log: Log, verb: str, seconds: float = 10.0) -> None:
        self.log, self.verb, self.seconds = log, verb, seconds
        self.objects = self.bytes = 0
        self.last = time.monotonic()

    def __call__(self, _relative: str, size: int) -> None:
        self.objects += 1
        self.bytes += size
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            self.log(f"{self.verb} {self.objects:,} object(s), {self.bytes / 1e6:,.1f} MB so far")


def is_remote(lake: str | Path) -> bool:
    return str(lake).startswith("s3://")


def _heartbeat_every(ttl: dt.timedelta) -> dt.timedelta:
    return min(ttl / 4, dt.timedelta(minutes=5))


@dataclass
class RemoteLake:
    """An S3 lake's mirror and lock, as one thing to open and close."""

    mirror: S3LakeMirror
    lock: S3LakeLock | None

    @classmethod
    def open(
        cls,
        lake: str,
        command: str,
        *,
        endpoint_url: str | None,
        kms_key_id: str | None,
        ttl: dt.timedelta,
        writes: bool,
        log: Log,
        wait_seconds: float = 0.0,
    ) -> RemoteLake:
        """Lock (if ``writes``, waiting up to ``wait_seconds`` for another run's lock) and pull;
        raises ``LakeLocked`` or ``LakeSyncError``."""
        from analytics.adapters.s3_lake import S3LakeLock, open_mirror

        mirror = open_mirror(lake, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                             read_only=not writes)  # fmt: skip
        lock = S3LakeLock(mirror.uri, mirror.client, command, ttl, kms_key_id) if writes else None
        if lock is not None:
            acquire_waiting(lock.acquire, wait_seconds, on_wait=_waiting(log))
            if lock.recovered is not None:
                holder, reason = lock.recovered
                who = holder.describe() if holder else "an unknown run"
                log(f"recovered a stale lock on {mirror.uri} left by {who}: {reason}")
        try:
            stats = mirror.pull(_Every(log, f"pulling {mirror.uri}:"))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        log(
            f"pulled {mirror.uri} into {mirror.root}: {stats.transferred} object(s) "
            f"({stats.bytes:,} bytes) downloaded, {stats.unchanged} unchanged, "
            f"{stats.deleted} removed"
        )
        for key in stats.unsafe_keys:
            log(f"skipped object {key!r}: its key would leave the lake folder")
        return cls(mirror, lock)

    @property
    def root(self) -> Path:
        return self.mirror.root

    def refresh(self) -> None:
        if self.lock is not None:
            self.lock.refresh()

    def close(self, push: bool, log: Log) -> None:
        """Push (if ``push``), then release the lock whatever happened."""
        try:
            if push:
                stats = self.mirror.push(_Every(log, f"pushing to {self.mirror.uri}:"))
                log(
                    f"pushed to {self.mirror.uri}: {stats.transferred} object(s) "
                    f"({stats.bytes:,} bytes) uploaded with SSE-KMS, {stats.deleted} deleted"
                )
        finally:
            if self.lock is not None:
                self.lock.release()


def _waiting(log: Log) -> Callable[[LakeLocked], None]:
    def say(refusal: LakeLocked) -> None:
        who = refusal.holder.describe() if refusal.holder else "another run"
        log(f"waiting for the lock on {refusal.lake_root}, held by {who}")

    return say


def take_local_lock(
    root: Path, command: str, ttl: dt.timedelta, wait_seconds: float, log: Log
) -> LakeLock:
    """The local lake lock on ``root`` (a lake folder or an S3 lake's mirror), waiting up to
    ``wait_seconds``; logs a stale lock it recovered from."""
    lock = LakeLock(root, command, ttl)
    acquire_waiting(lock.acquire, wait_seconds, on_wait=_waiting(log))
    if lock.recovered is not None:
        holder, reason = lock.recovered
        who = holder.describe() if holder else "an unknown run"
        log(f"recovered a stale lock on {root} left by {who}: {reason}")
    return lock


def remove_empty_lake(root: Path) -> None:
    """Undo the folders the lock created for a lake the command then wrote nothing into (a
    mistyped --lake must not leave an empty lake behind)."""
    for folder in (root / "_state", root):
        try:
            folder.rmdir()
        except OSError:  # not empty (the command wrote), or already gone
            return


def _should_push(error: BaseException | None) -> bool:
    if error is None:
        return True
    from analytics.adapters.s3_lake import LakeSyncError

    return isinstance(error, Exception) and not isinstance(
        error, (LockLost, LakeLocked, LakeSyncError)
    )


@contextmanager
def working_lake(
    lake: str | Path,
    command: str,
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    ttl: dt.timedelta = DEFAULT_TTL,
    writes: bool = True,
    wait_seconds: float = 0.0,
    log: Log | None = None,
    in_place: bool = False,
) -> Iterator[LocalLake]:
    """The lake a CLI command works on: lock (if ``writes``), work, unlock. An ``s3://`` lake
    is worked on in place when ``in_place`` (lock the bucket, work, unlock: see
    :func:`in_place_s3_lake`); otherwise (ingest, lake check) lock the bucket, pull, lock the
    mirror, work, push, unlock.

    ``writes=False`` (read-only commands) takes no lock, and never pushes an S3 lake. A lake
    another run holds raises :class:`LakeLocked` naming it, after ``wait_seconds`` of waiting.
    """
    log = log or _LOGGER.info
    if in_place and is_remote(lake):
        with in_place_s3_lake(str(lake), command, endpoint_url=endpoint_url,
                              kms_key_id=kms_key_id, ttl=ttl, writes=writes,
                              wait_seconds=wait_seconds, log=log) as in_place_lake:  # fmt: skip
            yield in_place_lake
        return
    if not is_remote(lake):
        if not writes:
            yield LocalLake(Path(lake))
            return
        root = Path(lake)
        new = not root.exists()  # a first ingest locks the lake it is about to create
        local = take_local_lock(root, command, ttl, wait_seconds, log)
        try:
            with Heartbeat(local.refresh, _heartbeat_every(ttl)) as beat:
                yield LocalLake(root)
            if beat.error is not None:
                raise beat.error
        finally:
            local.release()
            if new:
                remove_empty_lake(root)
        return
    remote = RemoteLake.open(str(lake), command, endpoint_url=endpoint_url,
                             kms_key_id=kms_key_id, ttl=ttl, writes=writes, log=log,
                             wait_seconds=wait_seconds)  # fmt: skip
    error: BaseException | None = None
    lock = remote.lock
    try:
        if lock is not None:
            # Two runs on one machine share the mirror: lock it as the flows do.
            mirror_lock = take_local_lock(remote.root, command, ttl, 0.0, log)

            def beat_both() -> None:
                lock.refresh(force=True)
                mirror_lock.refresh()

            try:
                with Heartbeat(beat_both, _heartbeat_every(ttl)) as beat:
                    yield LocalLake(remote.root)
                if beat.error is not None:
                    raise beat.error
            finally:
                mirror_lock.release()
        else:
            yield LocalLake(remote.root)
    except BaseException as exc:
        error = exc
        raise
    finally:
        remote.close(push=writes and _should_push(error), log=log)


@contextmanager
def in_place_s3_lake(
    lake: str,
    command: str,
    *,
    endpoint_url: str | None,
    kms_key_id: str | None,
    ttl: dt.timedelta,
    writes: bool,
    wait_seconds: float,
    log: Log,
) -> Iterator[LocalLake]:
    """An S3 lake read and written where it is: nothing is downloaded up front, readers fetch
    the partitions and columns they use, writers put each file with SSE-KMS. A command that
    writes holds the bucket's lock (the only exclusion between machines) for its whole run."""
    from analytics.adapters.s3 import s3_client
    from analytics.adapters.s3_lake import S3LakeLock, in_place_lake

    local = in_place_lake(lake, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                          read_only=not writes)  # fmt: skip
    if not writes:
        yield local
        return
    from analytics.adapters.s3_lake import S3LakeUri

    lock = S3LakeLock(S3LakeUri.parse(lake), s3_client(endpoint_url), command, ttl, kms_key_id)
    acquire_waiting(lock.acquire, wait_seconds, on_wait=_waiting(log))
    if lock.recovered is not None:
        holder, reason = lock.recovered
        who = holder.describe() if holder else "an unknown run"
        log(f"recovered a stale lock on {lake} left by {who}: {reason}")
    try:
        with Heartbeat(lambda: lock.refresh(force=True), _heartbeat_every(ttl)) as beat:
            yield local
        if beat.error is not None:
            raise beat.error
    finally:
        lock.release()


class HeldLake:
    """What a flow holds for its whole run: the local lock, and for an S3 lake its remote lock.

    ``refresh`` is the heartbeat the stages call after each commit; ``release`` pushes an S3
    lake (see the module docstring for when) and lets go of both locks.
    """

    def __init__(self, local: LakeLock, remote: RemoteLake | None = None) -> None:
        self.local = local
        self.remote = remote

    def refresh(self) -> None:
        self.local.refresh()
        if self.remote is not None:
            self.remote.refresh()

    def release(self, error: BaseException | None = None, log: Log | None = None) -> None:
        try:
            if self.remote is not None:
                self.remote.close(_should_push(error), log or _LOGGER.info)
        finally:
            self.local.release()


def local_lake_problem(lake: str | Path, creates: bool = False) -> str | None:
    """Why a local ``--lake`` cannot be used, or None: a file where the folder should be, or
    (unless the command ``creates`` the lake, as ingest does) no folder at all."""
    if is_remote(lake):
        return None
    root = Path(lake)
    if root.exists() and not root.is_dir():
        return f"lake {lake} is not a folder (a file of that name exists)"
    if not creates and not root.exists():
        return f"lake {lake} not found: no such folder; run keytrail ingest first"
    return None


@contextmanager
def command_lake(
    lake: str,
    command: str,
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    writes: bool = True,
    wait_seconds: float = 0.0,
    creates: bool = False,
    in_place: bool = False,
) -> Iterator[LocalLake]:
    """:func:`working_lake` for a CLI command: progress on stderr, a local lake that is a file
    or missing (unless the command ``creates`` it), a locked lake or an unreachable S3 lake a
    clear usage error (exit 2); afterwards one stderr line per lake file the command skipped as
    unreadable."""
    from analytics.adapters.sources import SourceError
    from flows.console import console, fail, plain

    problem = local_lake_problem(lake, creates)
    if problem is not None:
        raise fail(problem)

    def log(message: str) -> None:
        console.print(f"[dim]{plain(message)}[/]", highlight=False)

    try:
        with working_lake(lake, command, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                          writes=writes, wait_seconds=wait_seconds, log=log,
                          in_place=in_place) as local:  # fmt: skip
            try:
                yield local
            finally:
                for path, reason in local.skipped_files().items():
                    console.print(
                        f"[yellow]skipped[/] {plain(shown_file(lake, local, path))}: "
                        f"{plain(reason)}",
                        highlight=False,
                        soft_wrap=True,
                    )
    except LakeLocked as exc:
        raise fail(str(exc)) from None
    except SourceError as exc:  # LakeSyncError: the bucket named in the message
        if not is_remote(lake):
            raise
        raise fail(str(exc)) from None


def quarantine_location(lake: str) -> str:
    """Where a lake's quarantine records are, as the user should look for them."""
    return f"{lake.rstrip('/')}/quarantine" if is_remote(lake) else str(Path(lake) / "quarantine")


def shown_file(lake: str, local: LocalLake, relative: str) -> str:
    """A file inside the lake (``relative``) as the user knows it."""
    if local.in_place:
        return local.store.shown(relative)
    return shown_path(lake, local, local.root / relative)


def shown_path(lake: str, local: LocalLake, path: Path) -> str:
    """A path inside the working lake as the user knows it: in the bucket for an S3 lake."""
    if not is_remote(lake):
        return str(path)
    return f"{lake.rstrip('/')}/{path.relative_to(local.root).as_posix()}"
