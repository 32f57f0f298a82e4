"""Staged files: what a read task leaves for the commit to make visible.

A read task of the flow may run on another machine than the one that commits (a Dask worker),
so it writes its decoded events to the lake itself — a folder of a local lake, or objects of an
S3 lake — never to a temporary folder of its own. (``keytrail ingest`` reads on threads of the
committing process: its read tasks stage in that process's memory, see
:meth:`StagingArea.in_memory`.) Everything staged for one run lives under
``LAKE/_staging/<run>/``, which no reader of the lake looks at; the commit removes what it has
made visible, and the next writer (holding the lake lock) removes whatever a killed run left.

A staged file is named after the partition it came from and the event day it holds, never after
the attempt, so a retried task (or a task Dask re-runs after losing a worker) overwrites its own
earlier file instead of adding a second copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

STAGING_FOLDER = "_staging"
STAGED_SUFFIX = ".arrow"
"""Staged files are Arrow IPC files: written once and read once, by keytrail alone, so they keep
the in-memory layout — writing and reading are copies, with nothing to encode or decode
(Parquet's encoding cost several times as much, both ways, for a file nobody else reads)."""
_LOCAL_IPC = pa.ipc.IpcWriteOptions(compression=None)
_REMOTE_IPC = pa.ipc.IpcWriteOptions(compression="zstd")
"""To S3 (over the network) staged files go compressed with zstd, buffer by buffer."""


def _ipc_bytes(table: pa.Table, options: pa.ipc.IpcWriteOptions) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


IN_MEMORY_PREFIX = "memory://"
_IN_MEMORY: dict[str, pa.Table] = {}
"""Tables staged in this process's memory (:meth:`StagingArea.in_memory`), by path."""
_IN_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True)
class StagingArea:
    """Where one run's read tasks stage their events: a folder path, an ``s3://`` URI or this
    process's memory (``memory://``).

    Plain values only, so the area travels to a worker process as is; the S3 file system is
    built where it is used (:mod:`analytics.adapters.s3_staging`).
    """

    root: str
    endpoint_url: str | None = None
    kms_key_id: str | None = None

    @classmethod
    def in_lake(
        cls,
        lake: str | os.PathLike[str],
        run_id: str,
        endpoint_url: str | None = None,
        kms_key_id: str | None = None,
    ) -> StagingArea:
        """``LAKE/_staging/<run_id>`` of a lake folder or an ``s3://bucket/prefix`` lake."""
        base = str(lake).rstrip("/")
        return cls(f"{base}/{STAGING_FOLDER}/{run_id}", endpoint_url, kms_key_id)

    @classmethod
    def in_memory(cls, run_id: str) -> StagingArea:
        """This process's memory, for read tasks that are threads of the committing process.

        Nothing is written or read back: a staged table is handed to the merge as it is, and
        dropped once the merge has read it (a merge reads each staged table once; a run that
        fails is read again from its objects, never from staging)."""
        return cls(f"{IN_MEMORY_PREFIX}{run_id}")

    @property
    def remote(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def memory(self) -> bool:
        return self.root.startswith(IN_MEMORY_PREFIX)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def write_table(self, relative: str, table: pa.Table) -> str:
        """Write ``table`` at ``relative`` (replacing an earlier attempt's file); returns where."""
        target = self.path(relative)
        if self.memory:
            with _IN_MEMORY_LOCK:
                _IN_MEMORY[target] = table
            return target
        if self.remote:
            from analytics.adapters.s3_staging import put_bytes

            data = _ipc_bytes(table, _REMOTE_IPC).to_pybytes()
            put_bytes(target, data, self.endpoint_url, self.kms_key_id)
            return target
        final = Path(target)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{uuid.uuid4().hex}-{final.name}.partial")
        try:
            with (
                pa.OSFile(str(tmp), "wb") as sink,
                pa.ipc.new_file(sink, table.schema, options=_LOCAL_IPC) as writer,
            ):
                writer.write_table(table)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def read_table(self, where: str) -> pa.Table:
        """A staged file written by :meth:`write_table` (possibly on another machine); one staged
        in memory is handed over and forgotten."""
        if self.memory:
            with _IN_MEMORY_LOCK:
                return _IN_MEMORY.pop(where)
        if self.remote:
            from analytics.adapters.s3_staging import read_table

            return read_table(where, self.endpoint_url)
        with pa.OSFile(where) as source:
            return pa.ipc.open_file(source).read_all()

    def remove(self, where: str | None = None) -> None:
        """Delete one staged file, or (``where`` None) the whole area."""
        target = where or self.root
        if self.memory:
            with _IN_MEMORY_LOCK:
                for path in [p for p in _IN_MEMORY if p == target or p.startswith(f"{target}/")]:
                    del _IN_MEMORY[path]
            return
        if self.remote:
            from analytics.adapters.s3_staging import delete

            delete(target, self.endpoint_url, folder=where is None)
        elif where is None:
            shutil.rmtree(target, ignore_errors=True)
            if Path(target).parent.name == STAGING_FOLDER:  # a run's area: and LAKE/_staging/
                with contextlib.suppress(OSError):  # itself, once no other run's is in it
                    Path(target).parent.rmdir()
        else:
            Path(target).unlink(missing_ok=True)

    def remove_all_runs(self) -> None:
        """Delete ``LAKE/_staging/`` entirely: what earlier, killed runs left there. Only the
        holder of the lake lock may call this (another run's staging would go too)."""
        if self.memory:  # what a killed run held in memory went with its process
            return
        parent = self.root.rstrip("/").rsplit("/", 1)[0]
        StagingArea(parent, self.endpoint_url, self.kms_key_id).remove()
