"""Where a lake's files live: a folder, or an S3 prefix read and written in place.

Readers go through a pyarrow filesystem (:class:`pyarrow.fs.LocalFileSystem` for a folder,
:class:`pyarrow.fs.S3FileSystem` for ``s3://bucket/prefix``): listing a partition is one
``ListObjectsV2`` call, and reading Parquet fetches only the footer and the column chunks asked
for, so a command on an S3 lake transfers the partitions and columns it uses, never the lake.

Writes to S3 go through boto3 ``PutObject`` from an in-memory buffer, because pyarrow's S3
filesystem cannot ask for SSE-KMS per object and every object keytrail writes is encrypted
under the lake's KMS key. One ``PutObject`` is atomic: a reader sees the old object or the new
one, never half of it, which is what a local lake gets from temp file + rename.

The API is small on purpose; :func:`open_lake_fs` builds one from what the user typed:

``files(folder)``  the files directly in a folder (``recursive=True``: below it), with size
                   and modification time, as :class:`LakeFile`
``folders(folder)`` the names of the sub-folders
``file(relative)`` one file's :class:`LakeFile`, or None
``metadata``/``read_schema`` a Parquet footer, fetched once per file and process
``read_bytes``, ``read_table``, ``read_frame``, ``scan`` (a lazy Polars frame over files)
``write_bytes``, ``write_parquet``, ``delete`` (``read_only`` S3 lakes: in memory only)

Every ``relative`` path is inside the lake, ``/``-separated (``alerts/event_date=D/…``).
Credentials come from the normal AWS chain of each library and are never logged.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from analytics.lake import schema as s

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
_MAGIC = b"PAR1"
_TAIL_READ = 8  # footer length + magic
_FOOTERS_KEPT = 4096
_READ_THREADS = 8
_KEPT = "\x00kept/"  # the path of a file a read-only lake keeps in memory


class ObjectWriter(Protocol):
    """The S3 write path (see the module docstring): ``s3_lake.S3Writer``."""

    bucket: str
    endpoint_url: str | None
    kms_key_id: str | None

    def put(self, key: str, data: bytes, *, expected: str | bool | None = False) -> str: ...

    def upload(self, key: str, path: Path) -> None: ...

    def get(self, key: str) -> tuple[bytes, str] | None: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class LakeFile:
    """A file of the lake as its filesystem lists it."""

    path: str  # on the lake's filesystem: an absolute local path, or ``bucket/key``
    relative: str  # inside the lake, ``/``-separated
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.relative.rsplit("/", 1)[-1]


def endpoint_for(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint: ``endpoint_url`` if given, else ``AWS_ENDPOINT_URL_S3``, else
    ``AWS_ENDPOINT_URL`` (boto3's own order, so both libraries talk to the same store)."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _configured_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def s3_filesystem(endpoint_url: str | None = None, region: str | None = None) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem on the endpoint :func:`endpoint_for` picks, credentials from the
    AWS chain (environment, config files, instance metadata)."""
    endpoint = endpoint_for(endpoint_url)
    options: dict[str, Any] = {"region": region or _configured_region() or DEFAULT_REGION}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options["endpoint_override"] = rest.rstrip("/") if rest else endpoint
        options["scheme"] = scheme if rest else "https"
    return pafs.S3FileSystem(**options)


class LakeFS:
    """A lake's root on a pyarrow filesystem; see the module docstring."""

    def __init__(
        self,
        fs: pafs.FileSystem,
        base: str,
        uri: str,
        writer: ObjectWriter | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.uri = uri
        self.writer = writer
        self._remote = not isinstance(fs, pafs.LocalFileSystem)
        self.read_only = read_only and self._remote
        # What a read-only S3 lake was asked to write (derived files: a day's features): kept
        # in memory for this process, read back as if written, never put.
        self._kept: dict[str, bytes] = {}
        self._footers: dict[tuple[str, int, int], pq.FileMetaData] = {}
        self._footers_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """What crosses to another process (a Dask worker given a lake): the filesystem and
        where the lake is, not this process's footer cache or its lock."""
        state = dict(self.__dict__)
        state["_footers"] = {}
        del state["_footers_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._footers_lock = threading.Lock()

    @classmethod
    def local(cls, root: Path) -> LakeFS:
        return cls(pafs.LocalFileSystem(), str(Path(root).absolute()), str(root))

    @property
    def remote(self) -> bool:
        return self._remote

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}" if relative else self.base

    def shown(self, relative: str) -> str:
        """``relative`` as the user knows it: in the bucket for an S3 lake."""
        return f"{self.uri.rstrip('/')}/{relative}"

    def _file(self, info: pafs.FileInfo) -> LakeFile:
        relative = info.path[len(self.base) + 1 :]
        return LakeFile(info.path, relative, int(info.size or 0), int(info.mtime_ns or 0))

    # --- reading -------------------------------------------------------------------------------

    def _infos(self, folder: str, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path(folder), allow_not_found=True, recursive=recursive)
        return list(self.fs.get_file_info(selector))

    def files(self, folder: str, *, recursive: bool = False) -> list[LakeFile]:
        """Files in ``folder`` (sorted; hidden ``.…`` names, a writer's temporaries, left out)."""
        found = [
            self._file(info)
            for info in self._infos(folder, recursive)
            if info.type == pafs.FileType.File and not info.base_name.startswith(".")
        ]
        return sorted(found, key=lambda f: f.relative)

    def folders(self, folder: str) -> list[str]:
        """Names of the folders directly in ``folder`` (S3: common prefixes), sorted."""
        return sorted(
            info.base_name
            for info in self._infos(folder, False)
            if info.type == pafs.FileType.Directory
        )

    def file(self, relative: str) -> LakeFile | None:
        if relative in self._kept:
            return LakeFile(_KEPT + relative, relative, len(self._kept[relative]), 0)
        info = self.fs.get_file_info(self.path(relative))
        return self._file(info) if info.type == pafs.FileType.File else None

    def exists(self, relative: str) -> bool:
        return self.file(relative) is not None

    def read_bytes(self, relative: str) -> bytes:
        """The whole file; raises FileNotFoundError if there is none."""
        if relative in self._kept:
            return self._kept[relative]
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return bytes(stream.read())

    def _open(self, file: LakeFile) -> pa.NativeFile:
        return self.fs.open_input_file(file.path)

    def metadata(self, file: LakeFile) -> pq.FileMetaData:
        """A Parquet file's footer, fetched exactly (a ranged read of its last 8 bytes, which
        say how long the footer is, then one of the footer) and kept, boundedly, for the
        process's life per (path, size, mtime): every later read of the file fetches only its
        column chunks. Guessing a larger tail would save a request and, on the small files of
        features and alerts, download most of each file twice."""
        if file.path.startswith(_KEPT):
            return pq.read_metadata(pa.BufferReader(self._kept[file.relative]))
        key = (file.path, file.size, file.mtime_ns)
        found = self._footers.get(key)
        if found is not None:
            return found
        with self._open(file) as handle:
            want = min(file.size, _TAIL_READ)
            tail = handle.read_at(want, file.size - want) if want else b""
            if file.size < 12 or len(tail) < 8 or tail[-4:] != _MAGIC:
                raise pa.ArrowInvalid(f"{file.relative}: no Parquet footer (not a Parquet file)")
            length = int.from_bytes(tail[-8:-4], "little")
            if length + 12 > file.size:
                raise pa.ArrowInvalid(f"{file.relative}: Parquet footer longer than the file")
            if length + 8 > len(tail):
                tail = handle.read_at(length + 8, file.size - length - 8)
        # The footer alone, framed as a file: read_metadata reads only the tail.
        metadata = pq.read_metadata(pa.BufferReader(_MAGIC + bytes(tail[-(length + 8) :])))
        with self._footers_lock:
            if len(self._footers) >= _FOOTERS_KEPT:
                self._footers.pop(next(iter(self._footers)))
            self._footers[key] = metadata
        return metadata

    def read_schema(self, file: LakeFile) -> pa.Schema:
        """The Arrow schema in a Parquet file's footer (see :meth:`metadata`)."""
        if not self.remote:
            return pq.read_schema(file.path)
        return self.metadata(file).schema.to_arrow_schema()

    def read_table(
        self, files: Sequence[LakeFile], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """``columns`` (default all) of the Parquet ``files``, concatenated; on S3 only those
        columns' chunks are fetched."""
        cols = list(columns) if columns is not None else None
        tables = []
        for file in files:
            if file.path.startswith(_KEPT):
                kept = pa.BufferReader(self._kept[file.relative])
                tables.append(pq.read_table(kept, columns=cols))
                continue
            if not self.remote:
                tables.append(pq.read_table(file.path, columns=cols))
                continue
            with self._open(file) as handle:
                parquet = pq.ParquetFile(handle, metadata=self.metadata(file), pre_buffer=True)
                tables.append(parquet.read(columns=cols))
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables, promote_options="default")

    def read_frame(self, files: Sequence[LakeFile], columns: Sequence[str]) -> pl.DataFrame:
        """``columns`` of the Parquet ``files`` as one frame (Polars' reader for a folder)."""
        if not self.remote:
            paths = [f.path for f in files]
            return pl.read_parquet(paths, columns=list(columns), hive_partitioning=False)
        frame = pl.from_arrow(self.read_table(files, columns))
        assert isinstance(frame, pl.DataFrame)
        return frame.select(list(columns))

    def scan(self, files: Sequence[LakeFile], schema: pa.Schema | None = None) -> pl.LazyFrame:
        """A lazy frame over the Parquet ``files`` in ``schema`` (default: the first file's):
        what the query selects is all that is read. A folder is scanned by Polars' own reader;
        on S3 each collect fetches, file by file, only the column chunks the query uses (a
        Polars IO source: projection and filter are handed to it)."""
        if not self.remote:
            return pl.scan_parquet([f.path for f in files], hive_partitioning=False)
        arrow_schema = schema if schema is not None else self.read_schema(files[0])
        empty = pl.from_arrow(arrow_schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        names = list(empty.columns)

        def source(
            with_columns: list[str] | None,
            predicate: pl.Expr | None,
            n_rows: int | None,
            _batch_size: int | None,
        ) -> Iterator[pl.DataFrame]:
            wanted = with_columns if with_columns is not None else names
            types = empty.select(wanted).schema

            def read(file: LakeFile) -> pl.DataFrame:
                part = pl.from_arrow(self.read_table([file], wanted))
                assert isinstance(part, pl.DataFrame)
                part = part.select(wanted).cast(types)
                return part.filter(predicate) if predicate is not None else part

            left = n_rows
            # A few files in flight at once: S3 latency, not CPU, is what a file costs.
            with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
                for part in pool.map(read, files):
                    if left is not None:
                        part = part.head(max(left, 0))
                        left -= part.height
                    yield part

        return register_io_source(source, schema=empty.schema, explain_name="keytrail S3 lake")

    def scan_days(
        self, files: Sequence[LakeFile], names: Sequence[str], schema: pa.Schema | None = None
    ) -> pl.LazyFrame:
        """Files of a Hive-partitioned table as one lazy frame with columns ``names``, each
        file's ``event_date`` taken from its folder's name, not from the file.

        One scan per day, the day a literal: a filter on it prunes whole days, and files written
        with the column inside (before it left the files) and without it read the same. In a
        folder this is :func:`analytics.adapters.lake.scan_partitions`; on S3 each day is a
        :meth:`scan` (only the columns used are fetched) with the day added."""
        from analytics.adapters.lake import file_day, scan_partitions

        if not files:
            raise ValueError("no files to scan")
        if not self.remote:
            return scan_partitions([f.path for f in files], names)
        if schema is None:
            schema = self.read_schema(files[0])
        if s.EVENT_DATE in schema.names:
            schema = schema.remove(schema.get_field_index(s.EVENT_DATE))
        by_day: dict[Any, list[LakeFile]] = {}
        for file in files:
            by_day.setdefault(file_day(file.relative), []).append(file)
        frames = [
            self.scan(day_files, schema)
            .with_columns(pl.lit(day, dtype=pl.Date).alias(s.EVENT_DATE))
            .select(list(names))
            for day, day_files in sorted(by_day.items())
        ]
        return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]

    def read_day_table(self, file: LakeFile, schema: pa.Schema) -> pa.Table:
        """One partitioned file in ``schema``, its ``event_date`` from the folder's name."""
        from analytics.adapters.lake import file_day, with_partition_column

        return with_partition_column(self.read_table([file]), file_day(file.relative), schema)

    # --- writing -------------------------------------------------------------------------------

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Replace ``relative`` with ``data`` atomically (S3: one encrypted PutObject; a
        read-only S3 lake keeps it in memory for this process)."""
        if self.read_only:
            self._kept[relative] = data
            return
        if self.writer is not None:
            self.writer.put(self.key(relative), data)
            return
        from analytics.adapters.lake import write_bytes_atomic

        write_bytes_atomic(data, Path(self.path(relative)))

    def key(self, relative: str) -> str:
        """The object key of ``relative`` in the bucket (S3 only)."""
        return self.path(relative).split("/", 1)[1]

    def read_versioned(self, relative: str) -> tuple[bytes | None, str | None]:
        """The file's bytes (None if there is none) and, on S3, the version a
        :meth:`write_versioned` must find to replace it (its ETag)."""
        if self.writer is not None:
            found = self.writer.get(self.key(relative))
            return (None, None) if found is None else found
        try:
            return Path(self.path(relative)).read_bytes(), None
        except FileNotFoundError:
            return None, None

    def write_versioned(self, relative: str, data: bytes, expected: str | None) -> str | None:
        """Replace ``relative`` only if it is still the version :meth:`read_versioned` saw
        (``expected`` None: only if there is still none): on S3 a conditional ``PutObject``
        (``If-Match`` / ``If-None-Match``), so two writers can never both commit; returns the new
        version. A folder has one writer, its lock holder: an atomic replace."""
        if self.writer is not None and not self.read_only:
            return self.writer.put(self.key(relative), data, expected=expected)
        self.write_bytes(relative, data)
        return None

    def upload_file(self, relative: str, local: Path) -> None:
        """Put a finished local file at ``relative`` (S3: one encrypted object, visible only once
        whole; a folder: moved into place)."""
        if self.writer is not None and not self.read_only:
            self.writer.upload(self.key(relative), local)
            return
        if self.read_only:
            self._kept[relative] = local.read_bytes()
            return
        target = Path(self.path(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)

    def write_parquet(self, relative: str, table: pa.Table) -> None:
        """``table`` as zstd Parquet at ``relative``, atomically."""
        from analytics.adapters.lake import PARQUET_OPTIONS, write_parquet_atomic

        if not self._remote:
            write_parquet_atomic(table, Path(self.path(relative)))
            return
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **PARQUET_OPTIONS)
        self.write_bytes(relative, buffer.getvalue())

    def delete(self, relative: str) -> None:
        if self.read_only:
            self._kept.pop(relative, None)
            return
        if self.writer is not None:
            self.writer.delete(self.key(relative))
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(relative))


def is_s3(lake: str | os.PathLike[str]) -> bool:
    return str(lake).startswith(SCHEME)


def open_lake_fs(
    lake: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    kms_key_id: str | None = None,
    region: str | None = None,
    read_only: bool = False,
) -> LakeFS:
    """The :class:`LakeFS` of ``lake``: a folder, or ``s3://bucket/prefix`` (read through
    pyarrow, written through boto3 with SSE-KMS under ``kms_key_id``, default aws/s3; with
    ``read_only`` never written: what a reader derives stays in memory)."""
    if not is_s3(lake):
        return LakeFS.local(Path(lake))
    from analytics.adapters.s3_lake import S3LakeUri, S3Writer

    uri = S3LakeUri.parse(str(lake))
    writer = S3Writer(uri.bucket, endpoint_url, kms_key_id)
    base = f"{uri.bucket}/{uri.prefix}".rstrip("/")
    if region is None and not endpoint_for(endpoint_url) and not _configured_region():
        # AWS itself, no region configured: ask where the bucket is rather than assume.
        with contextlib.suppress(OSError):
            region = pafs.resolve_s3_region(uri.bucket)
    return LakeFS(s3_filesystem(endpoint_url, region), base, str(uri), writer, read_only=read_only)
