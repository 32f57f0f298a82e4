"""Staged files: what a read task leaves in the lake for the commit to make visible.

A read task may run on another machine than the one that commits (a Dask worker), so it writes
its decoded events to the lake itself — a folder of a local lake, or objects of an S3 lake —
never to a temporary folder of its own. Everything staged for one run lives under
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
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

STAGING_FOLDER = "_staging"
LOCAL_STAGING_PREFIX = "keytrail-staging-"
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


_OWNER = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True


def remove_abandoned_local_areas() -> None:
    """Delete this machine's private staging folders whose owning process no longer runs."""
    for folder in Path(tempfile.gettempdir()).glob(f"{LOCAL_STAGING_PREFIX}*"):
        try:
            pid = int((folder / _OWNER).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue  # not ours to judge: being created, or not a folder keytrail made
        if not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class StagingArea:
    """Where one run's read tasks stage their events: a folder path or an ``s3://`` URI.

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
    def on_this_machine(cls, run_id: str) -> StagingArea:
        """A private temporary folder, for read tasks that run where the commit runs.

        The folder names the process that owns it; folders whose owner is gone (a run that was
        killed) are removed first, so staged files cannot pile up in the temporary folder."""
        remove_abandoned_local_areas()
        folder = Path(tempfile.mkdtemp(prefix=LOCAL_STAGING_PREFIX))
        (folder / _OWNER).write_text(str(os.getpid()), encoding="ascii")
        return cls(str(folder / run_id))

    @property
    def remote(self) -> bool:
        return self.root.startswith("s3://")

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def write_table(self, relative: str, table: pa.Table) -> str:
        """Write ``table`` at ``relative`` (replacing an earlier attempt's file); returns where."""
        target = self.path(relative)
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
        """A staged file written by :meth:`write_table` (possibly on another machine)."""
        if self.remote:
            from analytics.adapters.s3_staging import read_table

            return read_table(where, self.endpoint_url)
        with pa.OSFile(where) as source:
            return pa.ipc.open_file(source).read_all()

    def remove(self, where: str | None = None) -> None:
        """Delete one staged file, or (``where`` None) the whole area."""
        target = where or self.root
        if self.remote:
            from analytics.adapters.s3_staging import delete

            delete(target, self.endpoint_url, folder=where is None)
        elif where is None:
            shutil.rmtree(target, ignore_errors=True)
            parent = Path(target).parent.name
            if parent.startswith(LOCAL_STAGING_PREFIX):  # and its private temporary folder
                shutil.rmtree(Path(target).parent, ignore_errors=True)
            elif parent == STAGING_FOLDER:  # a run's area: and LAKE/_staging/
                with contextlib.suppress(OSError):  # itself, once no other run's is in it
                    Path(target).parent.rmdir()
        else:
            Path(target).unlink(missing_ok=True)

    def remove_all_runs(self) -> None:
        """Delete ``LAKE/_staging/`` entirely: what earlier, killed runs left there. Only the
        holder of the lake lock may call this (another run's staging would go too)."""
        parent = self.root.rstrip("/").rsplit("/", 1)[0]
        StagingArea(parent, self.endpoint_url, self.kms_key_id).remove()
