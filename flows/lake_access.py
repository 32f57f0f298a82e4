"""Opening the lake a command names: a local folder as it is, an ``s3://`` lake through a mirror.

Every command and flow goes through :func:`working_lake` or :class:`HeldLake`, so an S3 lake is
locked, pulled, worked on and pushed the same way everywhere (:mod:`analytics.adapters.s3_lake`
says how). Pushing happens when the work ends, also after an ordinary error: every lake write is
atomic, so whatever the mirror holds is a consistent lake, and an ingest's committed progress is
worth keeping. It does not happen when the run lost its lock or the sync itself failed.
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
from analytics.adapters.lock import DEFAULT_TTL, LakeLock, LakeLocked, LockLost

LAKE_KMS_KEY_ENV = "KEYTRAIL_LAKE_KMS_KEY"
LAKE_HELP = (
    "Lake: a folder, or s3://bucket/prefix (worked on through a local mirror under "
    "KEYTRAIL_CACHE_DIR, default ~/.cache/keytrail, and written with SSE-KMS)."
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
    ) -> RemoteLake:
        """Lock (if ``writes``) and pull; raises ``LakeLocked`` or ``LakeSyncError``."""
        from analytics.adapters.s3_lake import S3LakeLock, open_mirror

        mirror = open_mirror(lake, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                             read_only=not writes)  # fmt: skip
        lock = S3LakeLock(mirror.uri, mirror.client, command, ttl, kms_key_id) if writes else None
        if lock is not None:
            lock.acquire()
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
    log: Log | None = None,
) -> Iterator[LocalLake]:
    """The lake a CLI command works on; for ``s3://`` lakes: lock, pull, work, push, unlock.

    ``writes=False`` (read-only commands) pulls without locking and never pushes.
    """
    if not is_remote(lake):
        yield LocalLake(Path(lake))
        return
    from analytics.adapters.s3_lake import Heartbeat

    log = log or _LOGGER.info
    remote = RemoteLake.open(str(lake), command, endpoint_url=endpoint_url,
                             kms_key_id=kms_key_id, ttl=ttl, writes=writes, log=log)  # fmt: skip
    error: BaseException | None = None
    lock = remote.lock
    try:
        if lock is not None:
            with Heartbeat(lambda: lock.refresh(force=True), _heartbeat_every(ttl)) as beat:
                yield LocalLake(remote.root)
            if beat.error is not None:
                raise beat.error
        else:
            yield LocalLake(remote.root)
    except BaseException as exc:
        error = exc
        raise
    finally:
        remote.close(push=writes and _should_push(error), log=log)


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


@contextmanager
def command_lake(
    lake: str,
    command: str,
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    writes: bool = True,
) -> Iterator[LocalLake]:
    """:func:`working_lake` for a CLI command: progress on stderr, a locked or unreachable S3
    lake a clear usage error (exit 2)."""
    from analytics.adapters.sources import SourceError
    from flows.console import console, fail, plain

    def log(message: str) -> None:
        console.print(f"[dim]{plain(message)}[/]", highlight=False)

    try:
        with working_lake(lake, command, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                          writes=writes, log=log) as local:  # fmt: skip
            yield local
    except LakeLocked as exc:
        raise fail(str(exc)) from None
    except SourceError as exc:  # LakeSyncError: the bucket named in the message
        if not is_remote(lake):
            raise
        raise fail(str(exc)) from None


def quarantine_location(lake: str) -> str:
    """Where a lake's quarantine records are, as the user should look for them."""
    return f"{lake.rstrip('/')}/quarantine" if is_remote(lake) else str(Path(lake) / "quarantine")


def shown_path(lake: str, local: LocalLake, path: Path) -> str:
    """A path inside the working lake as the user knows it: in the bucket for an S3 lake."""
    if not is_remote(lake):
        return str(path)
    return f"{lake.rstrip('/')}/{path.relative_to(local.root).as_posix()}"
