"""Where CloudTrail objects come from: a local folder or an S3 bucket.

A source lists candidate objects (with a change token: the S3 ETag, or size and mtime locally)
and fetches one object's bytes. Sources are small picklable values so decoding workers in other
processes can fetch for themselves; clients are created lazily inside each process.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectRef:
    """One listed object. ``key`` is what the lake records as ``source_object``."""

    key: str
    size: int
    etag: str
    mtime: dt.datetime | None


class SourceError(RuntimeError):
    """A permanent problem with the source itself (no such bucket, access denied to list)."""


class ObjectFetchError(RuntimeError):
    """One object could not be fetched (permission, vanished); it is retried on the next run."""


class Source(Protocol):
    """A place that holds a CloudTrail trail."""

    @property
    def remote(self) -> bool:
        """Whether fetching is network-bound (and so worth doing from several threads)."""
        ...

    def describe(self) -> str:
        """A human-readable name for messages, e.g. ``s3://bucket/prefix``."""
        ...

    def list_objects(self, delivery_days: list[dt.date] | None) -> Iterator[ObjectRef]:
        """Every object under the source (narrowed to those delivery days when possible)."""
        ...

    def day_prefixes(self, days: list[dt.date]) -> list[str] | None:
        """The delivery-day folders of ``days`` in the native layout (so that each can be listed
        on its own), or None when the source is not planned by folder."""
        ...

    def list_folder(self, folder: str) -> Iterator[ObjectRef]:
        """Every object in one folder of :meth:`day_prefixes`, keyed as ``list_objects`` keys it."""
        ...

    def folder_key(self, folder: str) -> str:
        """The key prefix of the objects in ``folder``, as the lake's state records them."""
        ...

    def fetch(self, ref: ObjectRef, limit: int | None = None) -> bytes:
        """The bytes of one object, or only its first ``limit`` bytes (so that an object too
        large to decode is never read whole); raises :class:`ObjectFetchError`."""
        ...


@dataclass(frozen=True)
class LocalSource:
    """A local copy of a trail bucket, or any folder of CloudTrail files, walked recursively."""

    root: Path

    @property
    def remote(self) -> bool:
        return False

    def describe(self) -> str:
        return str(self.root)

    def day_prefixes(self, days: list[dt.date]) -> list[str] | None:
        return None  # a local walk is cheap: the tree is listed once and cut into partitions

    def list_objects(self, delivery_days: list[dt.date] | None) -> Iterator[ObjectRef]:
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist or is not a folder")
        yield from self._walk(os.path.abspath(self.root), "")

    def list_folder(self, folder: str) -> Iterator[ObjectRef]:
        if folder.startswith("/") or ".." in folder.split("/"):
            raise SourceError(f"{folder}: folder leaves the source folder")
        yield from self._walk(os.path.join(os.path.abspath(self.root), folder), folder)

    def folder_key(self, folder: str) -> str:
        return folder

    def _walk(self, folder: str, relative: str) -> Iterator[ObjectRef]:
        """A sorted, recursive scandir walk (symlinks are not followed out of the tree)."""
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            name = f"{relative}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path, name + "/")
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                mtime = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC)
                yield ObjectRef(name, st.st_size, f"{st.st_size}-{st.st_mtime_ns}", mtime)

    def fetch(self, ref: ObjectRef, limit: int | None = None) -> bytes:
        # Keys come from our own listing, but a state file or a caller could hand us anything.
        if ref.key.startswith("/") or ".." in ref.key.split("/"):
            raise ObjectFetchError(f"{ref.key}: path leaves the source folder")
        try:
            descriptor = os.open(os.path.join(self.root, ref.key), os.O_RDONLY)
        except OSError as exc:
            raise ObjectFetchError(f"{ref.key}: cannot read ({exc.strerror})") from None
        try:
            return _read_bounded(descriptor, limit)
        except OSError as exc:
            raise ObjectFetchError(f"{ref.key}: cannot read ({exc.strerror})") from None
        finally:
            os.close(descriptor)


_READ_ON = 1024 * 1024
"""Bytes asked for at a time once a file has proved longer than it measured."""


def _read_bounded(descriptor: int, limit: int | None) -> bytes:
    """At most ``limit`` bytes of an open file, read into a buffer of the file's size.

    A plain descriptor, not a Python file object: opening one costs more system calls (a terminal
    check, a seek) than reading a small log object does, and a trail is mostly small objects.
    Reading ``limit`` bytes at once would first allocate ``limit`` (the decompression bound, 256
    MiB by default) and shrink it afterwards: a fresh mapping, and its unmapping, for every
    object. A file that grew since it was measured is read on to its end (or the limit).
    """
    size = os.fstat(descriptor).st_size
    want = size + 1 if limit is None else min(limit, size + 1)
    parts: list[bytes] = []
    got = 0
    while got < want:  # a read may return less than asked (a pipe, a signal)
        part = os.read(descriptor, want - got)
        if not part:
            return _joined(parts)
        parts.append(part)
        got += len(part)
    while limit is None or got < limit:
        part = os.read(descriptor, _READ_ON if limit is None else min(_READ_ON, limit - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return _joined(parts)


def _joined(parts: list[bytes]) -> bytes:
    return parts[0] if len(parts) == 1 else b"".join(parts)


def open_source(uri: str, endpoint_url: str | None = None) -> Source:
    """``s3://bucket/prefix`` or a local folder path."""
    if uri.startswith("s3://"):
        from analytics.adapters.s3 import S3Source  # boto3 is imported only when S3 is used

        return S3Source.from_uri(uri, endpoint_url=endpoint_url)
    return LocalSource(Path(uri))
