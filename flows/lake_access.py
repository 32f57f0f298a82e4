"""Opening the lake a command names: a local folder as it is, an ``s3://`` lake in place.

Every command and flow goes through :func:`working_lake` or :class:`HeldLake`, so a lake is
locked the same way everywhere: a command that writes holds the lake's lock for its whole run
(a local lake's ``_state/lock.json``; for an S3 lake the lock object ``_state/lock.json`` in the
bucket), readers take none. Every command works on an S3 lake in place
(:func:`in_place_s3_lake`, :mod:`analytics.adapters.lake_fs`): nothing is downloaded up front
and nothing of the lake is kept on this machine; each file written is put whole with SSE-KMS.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analytics.adapters.lake import LocalLake
from analytics.adapters.lock import (
    DEFAULT_TTL,
    Heartbeat,
    LakeLock,
    LakeLocked,
    acquire_waiting,
)

LAKE_KMS_KEY_ENV = "KEYTRAIL_LAKE_KMS_KEY"
LAKE_HELP = (
    "Lake: a folder, or s3://bucket/prefix (read and written in place, every object written "
    "with SSE-KMS)."
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
    from analytics.adapters.s3_lake import S3LakeLock

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


def is_remote(lake: str | Path) -> bool:
    return str(lake).startswith("s3://")


def _heartbeat_every(ttl: dt.timedelta) -> dt.timedelta:
    return min(ttl / 4, dt.timedelta(minutes=5))


def _waiting(log: Log) -> Callable[[LakeLocked], None]:
    def say(refusal: LakeLocked) -> None:
        who = refusal.holder.describe() if refusal.holder else "another run"
        log(f"waiting for the lock on {refusal.lake_root}, held by {who}")

    return say


def take_local_lock(
    root: Path, command: str, ttl: dt.timedelta, wait_seconds: float, log: Log
) -> LakeLock:
    """The local lake lock on ``root`` (a lake folder), waiting up to
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
) -> Iterator[LocalLake]:
    """The lake a CLI command works on: lock (if ``writes``), work, unlock. An ``s3://`` lake
    is worked on in place (see :func:`in_place_s3_lake`).

    ``writes=False`` (read-only commands) takes no lock, and never writes to an S3 lake. A lake
    another run holds raises :class:`LakeLocked` naming it, after ``wait_seconds`` of waiting.
    """
    log = log or _LOGGER.info
    if is_remote(lake):
        with in_place_s3_lake(str(lake), command, endpoint_url=endpoint_url,
                              kms_key_id=kms_key_id, ttl=ttl, writes=writes,
                              wait_seconds=wait_seconds, log=log) as in_place_lake:  # fmt: skip
            yield in_place_lake
        return
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


def take_s3_lock(
    lake: str,
    command: str,
    *,
    endpoint_url: str | None,
    kms_key_id: str | None,
    ttl: dt.timedelta,
    wait_seconds: float,
    log: Log,
) -> S3LakeLock:
    """The lock object of the S3 lake ``lake``, waiting up to ``wait_seconds``; logs a stale
    lock it recovered from."""
    from analytics.adapters.s3 import s3_client
    from analytics.adapters.s3_lake import S3LakeLock, S3LakeUri

    lock = S3LakeLock(S3LakeUri.parse(lake), s3_client(endpoint_url), command, ttl, kms_key_id)
    acquire_waiting(lock.acquire, wait_seconds, on_wait=_waiting(log))
    if lock.recovered is not None:
        holder, reason = lock.recovered
        who = holder.describe() if holder else "an unknown run"
        log(f"recovered a stale lock on {lake} left by {who}: {reason}")
    return lock


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
    from analytics.adapters.s3_lake import in_place_lake

    local = in_place_lake(lake, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                          read_only=not writes)  # fmt: skip
    if not writes:
        yield local
        return
    lock = take_s3_lock(lake, command, endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                        ttl=ttl, wait_seconds=wait_seconds, log=log)  # fmt: skip
    try:
        with Heartbeat(lambda: lock.refresh(force=True), _heartbeat_every(ttl)) as beat:
            yield local
        if beat.error is not None:
            raise beat.error
    finally:
        lock.release()


class HeldLake:
    """The lock a flow holds for its whole run: a lake folder's, or an S3 lake's lock object.

    ``refresh`` is the heartbeat the stages call after each commit; ``release`` lets go.
    """

    def __init__(self, lock: LakeLock | S3LakeLock) -> None:
        self.lock = lock

    def refresh(self) -> None:
        self.lock.refresh()

    def release(self) -> None:
        self.lock.release()


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
                          writes=writes, wait_seconds=wait_seconds, log=log) as local:  # fmt: skip
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
