"""A lake in S3: its lock, its write path and its in-place handle.

Every command reads and writes an ``s3://bucket/prefix`` lake where it is
(:func:`in_place_lake`, :mod:`analytics.adapters.lake_fs`): readers fetch the partitions and
columns they use through pyarrow's S3 file system; writers put each file whole through
:class:`S3Writer` — every object with server-side encryption under a KMS key, the lake's own
audit trail in the service it audits. Nothing of the lake is downloaded up front or kept on the
machine, so a command runs the same on a fresh worker with an empty disk. The bucket holds the
same Hive layout as a lake folder, so Athena, Trino and Spark read it where it is.

An ingest puts its day files (whole objects under names no other commit uses) before
``_state/objects.parquet``, the commit record, which it puts last with a conditional write
(``If-Match`` on the version it read, ``If-None-Match: *`` for a new lake): a run stopped before
it leaves files the state does not account for yet, which the next ingest de-duplicates by event
ID, never state that points at missing data. Exclusion between machines is
:class:`S3LakeLock`, one object created with a conditional write, so two runs can never both
win.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from analytics.adapters.lake import LocalLake

SCHEME = "s3://"
STATE_FOLDER = "_state"
_PUT_LIMIT = 64 * 1024 * 1024  # above this, boto3's managed (multipart) upload
_REMOTE_REFRESH_EVERY = dt.timedelta(minutes=1)


class LakeSyncError(SourceError):
    """The S3 lake could not be read or written; the message names the object and the fix."""


class LakeConflict(LakeSyncError):
    """A conditional write lost: the object changed since this run read it."""


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


def local_root(uri: S3LakeUri, cache_dir: Path | None = None) -> Path:
    """The folder of this machine that stands for ``uri`` in a :class:`LocalLake` worked on in
    place: under ``KEYTRAIL_CACHE_DIR`` (default ``~/.cache/keytrail``), named by a digest of the
    URI so no bucket or prefix text becomes a path of its own. Nothing is written there; the
    lake's files are named relative to it."""
    base = cache_dir or Path(
        os.environ.get("KEYTRAIL_CACHE_DIR") or Path.home() / ".cache" / "keytrail"
    )
    digest = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    safe_bucket = "".join(c if c.isalnum() or c in "-." else "_" for c in uri.bucket)[:63]
    return base / "lakes" / f"{safe_bucket}-{digest}"


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
    its ``root`` is a folder of this machine that nothing requires or creates. A
    ``read_only`` lake (a reader holds no lock) never writes to the bucket."""
    from analytics.adapters.lake import LocalLake
    from analytics.adapters.lake_fs import open_lake_fs

    uri = S3LakeUri.parse(text)
    root = local_root(uri, cache_dir)
    _probe(uri, s3_client(endpoint_url), endpoint_url)
    store = open_lake_fs(str(uri), endpoint_url=endpoint_url, kms_key_id=kms_key_id,
                         read_only=read_only)  # fmt: skip
    return LocalLake(root, store=store)
