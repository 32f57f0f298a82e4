"""A lake in S3: its lock, its in-place handle, and the mirror that ingest still works through.

``detect``, ``report``, ``export``, ``evaluate`` and the analyst API read and write an S3 lake in
place (:func:`in_place_lake`, :mod:`analytics.adapters.lake_fs`). Ingest, ``lake check`` and the
nightly flow read and write it as Parquet files by path, so for them an ``s3://bucket/prefix``
lake is worked on through a mirror folder: :meth:`S3LakeMirror.pull` makes the folder equal to
the bucket (downloading only objects whose ETag changed since the last pull), the run works on
it as on any local lake, and :meth:`S3LakeMirror.push` uploads what the run wrote — every
object with server-side encryption under a KMS key, the lake's own audit trail in the service
it audits — and deletes what the run removed. The bucket stays the truth, in the same Hive
layout, so Athena, Trino and Spark read it where it is.

Pushes upload event and feature partitions before ``_state/``: a push cut short leaves files
the state does not yet account for, which the next ingest de-duplicates by event ID, never
state that points at missing data. Exclusion between machines is :class:`S3LakeLock`, one
object created with a conditional write (``If-None-Match: *``), so two runs can never both win.

Object keys found in the bucket are untrusted: a key that would land outside the mirror folder
(``..``, absolute, empty segments) is skipped and reported, never written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from analytics.adapters.lock import (
    DEFAULT_TTL,
    LOCK_NAME,
    LakeLocked,
    LockHolder,
    LockLost,
    stale_reason,
)
from analytics.adapters.s3 import aws_problem, explain, s3_client
from analytics.adapters.sources import SourceError
from analytics.redact import redact
from analytics.staging import STAGING_FOLDER

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from analytics.adapters.lake import LocalLake

SCHEME = "s3://"
MANIFEST_NAME = ".keytrail-mirror.json"
STATE_FOLDER = "_state"
_PUT_LIMIT = 64 * 1024 * 1024  # above this, boto3's managed (multipart) upload
_REMOTE_REFRESH_EVERY = dt.timedelta(minutes=1)
_TRANSFER_THREADS = 8

Progress = Callable[[str, int], None]
"""Called with (what, bytes) after each object moved, for progress bars."""


class LakeSyncError(SourceError):
    """The S3 lake could not be read or written; the message names the object and the fix."""


class LakeConflict(LakeSyncError):
    """A conditional write lost: the object changed since this run read it."""


def is_s3_lake(text: str | os.PathLike[str]) -> bool:
    return str(text).startswith(SCHEME)


@dataclass(frozen=True)
class S3LakeUri:
    """``s3://bucket/prefix``: where an S3 lake lives."""

    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, text: str) -> S3LakeUri:
        rest = text.removeprefix(SCHEME)
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise LakeSyncError(f"{text!r} names no bucket; expected s3://bucket[/prefix]")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    @property
    def lock_key(self) -> str:
        return self.key(f"{STATE_FOLDER}/{LOCK_NAME}")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")


def default_mirror_root(
    uri: S3LakeUri, cache_dir: Path | None = None, *, read_only: bool = False
) -> Path:
    """Where the mirror of ``uri`` lives: ``KEYTRAIL_CACHE_DIR`` or ``~/.cache/keytrail``.

    The folder name is a digest of the URI (plus the bucket name, for people looking), so no
    bucket or prefix text ever becomes a path of its own. Readers (a notebook, ``evaluate``,
    ``detect --dry-run``) get a mirror of their own: a pull makes its folder equal to the
    bucket, which in the writer's mirror would delete files the writer has not pushed yet.
    """
    base = cache_dir or Path(
        os.environ.get("KEYTRAIL_CACHE_DIR") or Path.home() / ".cache" / "keytrail"
    )
    digest = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    safe_bucket = "".join(c if c.isalnum() or c in "-." else "_" for c in uri.bucket)[:63]
    return base / "lakes" / f"{safe_bucket}-{digest}{'-read' if read_only else ''}"


def safe_relative(key: str, prefix: str) -> str | None:
    """The mirror path of ``key`` under ``prefix``, or None if it could escape the folder."""
    if not key.startswith(prefix):
        return None
    relative = key[len(prefix) :]
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    return relative


def _ignored(relative: str) -> bool:
    """Files that belong to this machine or this run, not to the lake: temporaries, locks, the
    manifest, and the staged files of an ingest (written to and removed from the bucket by the
    ingest itself, :mod:`analytics.staging`)."""
    name = relative.rsplit("/", 1)[-1]
    return (
        name.startswith(".")
        or relative.startswith(f"{STAGING_FOLDER}/")
        or (relative.startswith(f"{STATE_FOLDER}/") and name.startswith(LOCK_NAME))
    )


def _push_order(relative: str) -> tuple[int, str]:
    return (1 if relative.startswith(f"{STATE_FOLDER}/") else 0, relative)


@dataclass
class SyncStats:
    """What a pull or push moved."""

    transferred: int = 0
    deleted: int = 0
    unchanged: int = 0
    bytes: int = 0
    unsafe_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    """A mirror file as last synced. Lake writes replace files by rename, so a rewritten file
    has a new inode even when its size and (coarse) mtime look the same."""

    etag: str
    size: int
    mtime_ns: int
    ino: int = -1

    @classmethod
    def of(cls, etag: str, stat: os.stat_result) -> _Entry:
        return cls(etag, stat.st_size, stat.st_mtime_ns, stat.st_ino)

    def matches(self, stat: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.ino) == (stat.st_size, stat.st_mtime_ns,
                                                        stat.st_ino)  # fmt: skip


_T = TypeVar("_T")
_R = TypeVar("_R")


def _in_parallel(work: Callable[[_T], _R], items: list[_T]) -> Iterator[_R]:
    """``work`` over ``items`` on a few threads (S3 latency, not CPU, is the limit); results as
    they finish. The first error stops the rest and is raised."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(_TRANSFER_THREADS, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


class S3LakeMirror:
    """A local folder kept equal to an S3 lake; see the module docstring."""

    def __init__(
        self,
        uri: S3LakeUri,
        root: Path,
        client: S3Client,
        kms_key_id: str | None = None,
    ) -> None:
        self.uri = uri
        self.root = root
        self.client = client
        self.kms_key_id = kms_key_id

    # --- manifest: what the mirror last agreed with the bucket on -----------------------------

    @property
    def _manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def _load_manifest(self) -> dict[str, _Entry]:
        try:
            raw = json.loads(self._manifest_path.read_text())
            return {
                str(k): _Entry(
                    str(v["etag"]), int(v["size"]), int(v["mtime_ns"]), int(v.get("ino", -1))
                )
                for k, v in raw.items()
            }
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # no or mangled manifest: everything is compared afresh

    def _save_manifest(self, manifest: dict[str, _Entry]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {k: {"etag": e.etag, "size": e.size, "mtime_ns": e.mtime_ns, "ino": e.ino}
                for k, e in sorted(manifest.items())}  # fmt: skip
        tmp = self._manifest_path.with_name(f"{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(data, indent=0))
        os.replace(tmp, self._manifest_path)

    def _local_files(self) -> Iterator[tuple[str, os.stat_result]]:
        if not self.root.is_dir():
            return
        for path in self.root.rglob("*"):
            if path.is_file():
                relative = path.relative_to(self.root).as_posix()
                if not _ignored(relative):
                    yield relative, path.stat()

    def _remote_objects(self) -> tuple[dict[str, tuple[str, int]], list[str]]:
        objects: dict[str, tuple[str, int]] = {}
        unsafe: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.uri.bucket, Prefix=self.uri.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    relative = safe_relative(key, self.uri.prefix)
                    if relative is None:
                        unsafe.append(key)
                    elif not _ignored(relative):
                        objects[relative] = (item["ETag"].strip('"'), int(item["Size"]))
        except ClientError as exc:
            raise LakeSyncError(
                explain(exc, self.uri.bucket, self.uri.prefix, "ListObjectsV2")
            ) from None
        return objects, unsafe

    # --- pull -----------------------------------------------------------------------------------

    def pull(self, progress: Progress | None = None) -> SyncStats:
        """Make the mirror equal to the bucket; only changed objects are downloaded."""
        stats = SyncStats()
        remote, stats.unsafe_keys = self._remote_objects()
        manifest = self._load_manifest()
        local = dict(self._local_files())
        wanted = []
        for relative, (etag, size) in sorted(remote.items()):
            known, here = manifest.get(relative), local.get(relative)
            if (
                known is not None
                and here is not None
                and known.etag == etag
                and known.matches(here)
            ):
                stats.unchanged += 1
            else:
                wanted.append((relative, etag, size))

        def download(item: tuple[str, str, int]) -> tuple[str, _Entry, int]:
            relative, etag, size = item
            return relative, self._download(relative, etag), size

        try:
            for relative, entry, size in _in_parallel(download, wanted):
                manifest[relative] = entry
                stats.transferred += 1
                stats.bytes += size
                if progress:
                    progress(relative, size)
        finally:
            self._save_manifest(manifest)
        for relative in sorted(set(local) - set(remote)):
            (self.root / relative).unlink(missing_ok=True)
            manifest.pop(relative, None)
            stats.deleted += 1
        for relative in set(manifest) - set(remote):
            manifest.pop(relative, None)
        self._save_manifest(manifest)
        return stats

    def _download(self, relative: str, etag: str) -> _Entry:
        final = self.root / relative
        if not final.resolve().is_relative_to(self.root.resolve()):  # belt and braces
            raise LakeSyncError(f"{self.uri.key(relative)}: key would leave the mirror folder")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{uuid.uuid4().hex}-{final.name}.partial")
        key = self.uri.key(relative)
        try:
            self.client.download_file(self.uri.bucket, key, str(tmp))
            os.replace(tmp, final)
        except ClientError as exc:
            raise LakeSyncError(explain(exc, self.uri.bucket, key, "GetObject")) from None
        finally:
            tmp.unlink(missing_ok=True)
        return _Entry.of(etag, final.stat())

    # --- push -----------------------------------------------------------------------------------

    def _encryption(self) -> dict[str, Any]:
        return sse_kms(self.kms_key_id)

    def push(self, progress: Progress | None = None) -> SyncStats:
        """Upload what changed in the mirror since the last sync, then delete what it removed.

        Data first, ``_state/`` second (see the module docstring); within each, in parallel.
        """
        stats = SyncStats()
        manifest = self._load_manifest()
        local = dict(self._local_files())
        changed = []
        for relative, here in sorted(local.items()):
            known = manifest.get(relative)
            if known is not None and known.matches(here):
                stats.unchanged += 1
            else:
                changed.append((relative, here))

        def upload(item: tuple[str, os.stat_result]) -> tuple[str, _Entry]:
            relative, here = item
            return relative, _Entry.of(self._upload(relative, here.st_size), here)

        try:
            for last in (False, True):
                phase = [item for item in changed if _push_order(item[0])[0] == int(last)]
                for relative, entry in _in_parallel(upload, phase):
                    manifest[relative] = entry
                    stats.transferred += 1
                    stats.bytes += entry.size
                    if progress:
                        progress(relative, entry.size)
        finally:  # a push cut short does not upload again what it already sent
            self._save_manifest(manifest)
        for relative in sorted(set(manifest) - set(local)):
            key = self.uri.key(relative)
            try:
                self.client.delete_object(Bucket=self.uri.bucket, Key=key)
            except ClientError as exc:
                raise LakeSyncError(explain(exc, self.uri.bucket, key, "DeleteObject")) from None
            manifest.pop(relative)
            stats.deleted += 1
        self._save_manifest(manifest)
        return stats

    def _upload(self, relative: str, size: int) -> str:
        key = self.uri.key(relative)
        path = self.root / relative
        try:
            if size <= _PUT_LIMIT:
                with open(path, "rb") as body:
                    answer = self.client.put_object(
                        Bucket=self.uri.bucket, Key=key, Body=body, **self._encryption()
                    )
                return answer["ETag"].strip('"')
            self.client.upload_file(str(path), self.uri.bucket, key, ExtraArgs=self._encryption())
            return self.client.head_object(Bucket=self.uri.bucket, Key=key)["ETag"].strip('"')
        except ClientError as exc:
            raise LakeSyncError(explain(exc, self.uri.bucket, key, "PutObject")) from None


def sse_kms(kms_key_id: str | None) -> dict[str, Any]:
    """Request arguments that make S3 encrypt an object under ``kms_key_id`` (else aws/s3)."""
    args: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
    if kms_key_id:
        args["SSEKMSKeyId"] = kms_key_id
    return args


class S3Writer:
    """The write path of an S3 lake worked on in place: every object put with SSE-KMS under the
    lake's key (:mod:`analytics.adapters.lake_fs` reads through pyarrow, which cannot ask for
    it). Plain values only cross to another process (a Dask worker merging a day); the boto3
    client is made where it is used."""

    def __init__(
        self, bucket: str, endpoint_url: str | None = None, kms_key_id: str | None = None
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.kms_key_id = kms_key_id

    def __getstate__(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "endpoint_url": self.endpoint_url,
                "kms_key_id": self.kms_key_id}  # fmt: skip

    @property
    def client(self) -> S3Client:
        return s3_client(self.endpoint_url)

    def put(self, key: str, data: bytes, *, expected: str | bool | None = False) -> str:
        """One ``PutObject`` of ``data``; returns the new ETag. ``expected`` makes it a
        compare-and-swap: an ETag (``If-Match``: replace only that version) or None
        (``If-None-Match: *``: only if there is none); a lost race raises
        :class:`LakeConflict`."""
        condition: dict[str, str] = {}
        if expected is None:
            condition["IfNoneMatch"] = "*"
        elif isinstance(expected, str):
            condition["IfMatch"] = expected
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data,
                                **sse_kms(self.kms_key_id), **condition}  # fmt: skip
        try:
            answer = self.client.put_object(**args)
        except ClientError as exc:
            if condition and _error_code(exc) in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
                "NoSuchKey",
            ):
                raise LakeConflict(
                    f"s3://{self.bucket}/{key} was changed by another writer since this run "
                    "read it; nothing was committed (rerun: the lake lock keeps writers apart)"
                ) from None
            raise LakeSyncError(explain(exc, self.bucket, key, "PutObject")) from None
        return str(answer["ETag"]).strip('"')

    def upload(self, key: str, path: Path) -> None:
        """A local file as one object (multipart above 64 MiB: still visible only once whole)."""
        try:
            if path.stat().st_size <= _PUT_LIMIT:
                with open(path, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                           **sse_kms(self.kms_key_id))  # fmt: skip
                return
            self.client.upload_file(str(path), self.bucket, key,
                                    ExtraArgs=sse_kms(self.kms_key_id))  # fmt: skip
        except ClientError as exc:
            raise LakeSyncError(explain(exc, self.bucket, key, "PutObject")) from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or None if there is none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise LakeSyncError(explain(exc, self.bucket, key, "GetObject")) from None
        return answer["Body"].read(), str(answer["ETag"]).strip('"')

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise LakeSyncError(explain(exc, self.bucket, key, "DeleteObject")) from None


def _error_code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return "PreconditionFailed" if status == 412 else code


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class S3LakeLock:
    """One run at a time on an S3 lake, across machines.

    The lock is ``_state/lock.json`` in the bucket, created only if absent (``If-None-Match``),
    refreshed and broken only if unchanged since read (``If-Match``), so every step is a
    compare-and-swap that S3 itself arbitrates. A holder is stale when its heartbeat is older
    than the TTL, or when it ran on this host and its process is gone.
    """

    def __init__(
        self,
        uri: S3LakeUri,
        client: S3Client,
        command: str,
        ttl: dt.timedelta = DEFAULT_TTL,
        kms_key_id: str | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.uri = uri
        self.client = client
        self.command = command
        self.ttl = ttl
        self.kms_key_id = kms_key_id
        self.clock = clock
        self.holder: LockHolder | None = None
        self.recovered: tuple[LockHolder | None, str] | None = None
        self._etag: str | None = None
        self._refreshed_at: dt.datetime | None = None

    @property
    def where(self) -> str:
        return f"{SCHEME}{self.uri.bucket}/{self.uri.lock_key}"

    def _put(self, holder: LockHolder, **condition: str) -> str:
        args: dict[str, Any] = {"Bucket": self.uri.bucket, "Key": self.uri.lock_key,
                                "Body": holder.to_json(), "ContentType": "application/json",
                                **sse_kms(self.kms_key_id), **condition}  # fmt: skip
        answer = self.client.put_object(**args)
        return str(answer["ETag"]).strip('"')

    def _new_holder(self) -> LockHolder:
        now = self.clock()
        return LockHolder(socket.gethostname(), os.getpid(), self.command, now, now,
                          uuid.uuid4().hex)  # fmt: skip

    def _read(self) -> tuple[LockHolder | None, str, dt.datetime] | None:
        try:
            answer = self.client.get_object(Bucket=self.uri.bucket, Key=self.uri.lock_key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise LakeSyncError(
                explain(exc, self.uri.bucket, self.uri.lock_key, "GetObject")
            ) from None
        body = answer["Body"].read()
        try:
            holder: LockHolder | None = LockHolder.from_json(body)
        except (ValueError, KeyError, TypeError):
            holder = None
        return holder, str(answer["ETag"]).strip('"'), answer["LastModified"]

    def acquire(self) -> LockHolder:
        """Take the lock or raise :class:`LakeLocked` naming the live holder."""
        holder = self._new_holder()
        for _ in range(5):  # lost races (the lock vanished or changed under us) are retried
            try:
                self._etag = self._put(holder, IfNoneMatch="*")
                break
            except ClientError as exc:
                if _error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise LakeSyncError(
                        explain(exc, self.uri.bucket, self.uri.lock_key, "PutObject")
                    ) from None
            found = self._read()
            if found is None:
                continue
            current, etag, modified = found
            reason = self._stale(current, modified)
            if reason is None:
                raise LakeLocked(str(self.uri), current, lock_location=self.where)
            try:
                self._etag = self._put(holder, IfMatch=etag)
            except ClientError as exc:
                if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict",
                                        "NoSuchKey"):  # fmt: skip
                    continue  # another run broke it first; look again
                raise LakeSyncError(
                    explain(exc, self.uri.bucket, self.uri.lock_key, "PutObject")
                ) from None
            self.recovered = (current, reason)
            break
        else:
            raise LakeLocked(
                str(self.uri), None, "the lock kept changing while we tried to take it",
                lock_location=self.where,
            )  # fmt: skip
        self.holder = holder
        self._refreshed_at = holder.heartbeat_at
        return holder

    def _stale(self, holder: LockHolder | None, modified: dt.datetime) -> str | None:
        now = self.clock()
        if holder is None:
            age = now - modified
            return (
                f"the lock object is unreadable and {age.total_seconds() / 3600:.1f} h old"
                if age > self.ttl
                else None
            )
        return stale_reason(holder, self.ttl, now)

    def refresh(self, force: bool = False) -> None:
        """Renew the heartbeat (at most once a minute unless ``force``); raise :class:`LockLost`
        if another run broke the lock."""
        if self.holder is None or self._etag is None:
            return
        now = self.clock()
        if not force and self._refreshed_at and now - self._refreshed_at < _REMOTE_REFRESH_EVERY:
            return
        renewed = LockHolder(self.holder.host, self.holder.pid, self.holder.command,
                             self.holder.started_at, now, self.holder.token,
                             self.holder.process_started)  # fmt: skip
        try:
            self._etag = self._put(renewed, IfMatch=self._etag)
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "NoSuchKey"):
                raise LockLost(
                    f"the lock on {self.uri} was taken over by another run; stopping"
                ) from None
            raise LakeSyncError(
                explain(exc, self.uri.bucket, self.uri.lock_key, "PutObject")
            ) from None
        self.holder = renewed
        self._refreshed_at = now

    def release(self) -> None:
        """Delete the lock if it is still ours."""
        if self.holder is None:
            return
        found = self._read()
        if found is not None and found[0] is not None and found[0].token == self.holder.token:
            self.client.delete_object(Bucket=self.uri.bucket, Key=self.uri.lock_key)
        self.holder = None
        self._etag = None


def open_mirror(
    text: str,
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    cache_dir: Path | None = None,
    read_only: bool = False,
) -> S3LakeMirror:
    """The mirror of the S3 lake ``text`` (``s3://bucket/prefix``), with its client; see
    :func:`default_mirror_root` for why readers and writers never share one."""
    uri = S3LakeUri.parse(text)
    root = default_mirror_root(uri, cache_dir, read_only=read_only)
    return S3LakeMirror(uri, root, s3_client(endpoint_url), kms_key_id)


def _probe(uri: S3LakeUri, client: S3Client, endpoint_url: str | None) -> None:
    """One ``ListObjectsV2`` of at most one key, through boto3: a bucket that does not exist, a
    missing permission, an endpoint that does not answer or absent credentials become one
    clear error before any work starts, worded as every other S3 error of keytrail's."""
    try:
        client.list_objects_v2(Bucket=uri.bucket, Prefix=uri.prefix, MaxKeys=1)
    except ClientError as exc:
        raise LakeSyncError(explain(exc, uri.bucket, uri.prefix, "ListObjectsV2")) from None
    except BotoCoreError as exc:
        raise aws_problem(exc, endpoint_url) or LakeSyncError(redact(str(exc))) from None


def in_place_lake(
    text: str,
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    cache_dir: Path | None = None,
    read_only: bool = False,
) -> LocalLake:
    """The S3 lake ``text`` read and written where it is (:mod:`analytics.adapters.lake_fs`);
    its ``root`` is a cache folder of this machine that nothing requires to exist. A
    ``read_only`` lake (a reader holds no lock) never writes to the bucket."""
    from analytics.adapters.lake import LocalLake
    from analytics.adapters.lake_fs import open_lake_fs

    uri = S3LakeUri.parse(text)
    root = default_mirror_root(uri, cache_dir).with_name(
        default_mirror_root(uri, cache_dir).name + "-cache"
    )
    _probe(uri, s3_client(endpoint_url), endpoint_url)
    store = open_lake_fs(str(uri), endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                         read_only=read_only)  # fmt: skip
    return LocalLake(root, store=store)
