"""The eventIDs a day of the lake already holds, so that each flush of an ingest drops repeats
and notices an eventID reused for different content.

A run tests every buffered event against every ID of its day, and a day may hold millions:
building a hash set of strings for each test made de-duplication grow with the day's size.
Membership is therefore tested on 64-bit hashes first (about seven times cheaper) and confirmed
on the strings only for the rare rows whose hash is known, so a hash collision can never drop
an event. Hashes are compared only within one process, where Polars' hash is stable: a read
task that runs in the merge's own process hashes its table itself (:func:`with_merge_hashes`),
in parallel, so that the merge, which runs one at a time, only compares. The IDs themselves are
kept packed (:class:`PackedIds`): 16 bytes for a UUID instead of 52.

Each known ID also carries the hash of its content (:data:`CONTENT_COLUMNS`) and who holds it
(source object and event name), for the rare ID that is seen again. For the IDs already in the
lake these are read from the day's files only when a repeat first turns up, so a run without
repeats pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from analytics.lake import schema as s

CONTENT_COLUMNS = (
    s.EVENT_TIME, s.EVENT_SOURCE, s.EVENT_NAME, s.EVENT_TYPE, s.AWS_REGION,
    s.RECIPIENT_ACCOUNT_ID, s.PRINCIPAL_ARN, s.SOURCE_IP, s.SOURCE_SERVICE, s.USER_AGENT,
    s.ERROR_CODE, s.REQUEST_PARAMETERS, s.REQUEST_ID,
)  # fmt: skip
"""What "the same event" means: two records under one eventID are a redelivery when these stored
columns are equal, and a clash otherwise. They are the record's own facts as CloudTrail states
them (time, call, caller, origin, outcome, request, as delivered); the object it came in is left
out (a redelivery arrives in another object), and so is whatever keytrail derives (actor, key
ARN), so that a rule changed between two runs can never make a redelivery look like a clash.
``sourceIPAddress`` is hashed as delivered, whichever of the two columns it was filed in."""
_CONTENT = [
    pl.coalesce(s.SOURCE_IP, s.SOURCE_SERVICE) if name == s.SOURCE_IP else pl.col(name)
    for name in CONTENT_COLUMNS
    if name != s.SOURCE_SERVICE
]

HOLDER = "holder_object"
HOLDER_EVENT = "holder_event_name"
CONTENT = "content_hash"
KNOWN = "known"
ID_HASH = "id_hash"
_DETAILS = {CONTENT: pl.UInt64, HOLDER: pl.String, HOLDER_EVENT: pl.String}
_CONTENT_SCHEMA = pa.schema([s.EVENT_SCHEMA.field(name) for name in CONTENT_COLUMNS])


def content_hashes(table: pa.Table | pl.DataFrame) -> pl.Series:
    """The content hash of each row of an event table (or of a frame of its content columns)."""
    if isinstance(table, pa.Table):
        frame = pl.from_arrow(table.select(list(CONTENT_COLUMNS)).cast(_CONTENT_SCHEMA))
        assert isinstance(frame, pl.DataFrame)
    else:
        frame = table
    return frame.select(_CONTENT).hash_rows().alias(CONTENT)


def with_merge_hashes(table: pa.Table) -> pa.Table:
    """``table`` with the hashes of its eventIDs (:data:`ID_HASH`) and contents (:data:`CONTENT`)
    as two more columns, computed where the table is made (a read thread) so that the merge,
    which runs one at a time, only compares them. Only for a table merged in this process:
    the hashes are Polars' and compared within one process."""
    hashes = _hashes_of(table)
    for name in (ID_HASH, CONTENT):
        table = table.append_column(name, hashes.get_column(name).to_arrow())
    return table


def merge_hashes(table: pa.Table) -> tuple[pa.Table, pl.DataFrame]:
    """The table without the columns :func:`with_merge_hashes` added, and its :data:`ID_HASH`
    and :data:`CONTENT` per row (taken from those columns, or computed when it has none)."""
    if ID_HASH not in table.column_names:
        return table, _hashes_of(table)
    hashes = pl.from_arrow(table.select([ID_HASH, CONTENT]))
    assert isinstance(hashes, pl.DataFrame)
    return table.drop_columns([ID_HASH, CONTENT]), hashes


def _hashes_of(table: pa.Table) -> pl.DataFrame:
    ids = pl.Series(table.column(s.EVENT_ID))
    return pl.DataFrame([SeenIds.hash_ids(ids).alias(ID_HASH), content_hashes(table)])


_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class PackedIds:
    """eventIDs held in 16 bytes each when they are canonical (lower-case) UUIDs, as CloudTrail's
    are, and as text otherwise: a day's remembered IDs are most of a long run's memory, and as
    Polars text a UUID takes 52 bytes. Packing is exact: a canonical UUID and its 128 bits are
    one-to-one, and any other ID (upper case, braces, anything) is kept as it was given, so the
    text an ID is rebuilt as is always the text it came as."""

    def __init__(self, ids: pl.Series) -> None:
        is_uuid = pl.col("id").str.contains(_UUID).fill_null(False)
        digits = pl.col("id").str.replace_all("-", "", literal=True)
        halves = [
            pl.when(is_uuid)
            .then(half.str.to_integer(base=16, dtype=pl.UInt64, strict=False))
            .alias(name)
            for name, half in (("hi", digits.str.slice(0, 16)), ("lo", digits.str.slice(16)))
        ]
        packed = ids.to_frame("id").select(*halves, is_uuid.alias("uuid"))
        self._hi, self._lo = packed.get_column("hi"), packed.get_column("lo")
        other = ~packed.get_column("uuid")
        self._other_rows = other.arg_true()
        others = ids.filter(other).rename(s.EVENT_ID)
        if others.len():  # copied out, so as not to keep alive the buffer they were cut from
            others = pl.Series(s.EVENT_ID, others.to_arrow().cast(pa.large_string()))
        self._others = others

    def __len__(self) -> int:
        return self._hi.len()

    def strings(self, mask: pl.Series | None = None) -> pl.Series:
        """The IDs as text (named ``event_id``), in order; only the rows of ``mask`` if given."""
        hi, lo = (
            (self._hi, self._lo) if mask is None else (self._hi.filter(mask), self._lo.filter(mask))
        )
        is_uuid = hi.is_not_null()
        uuids = pl.Series(
            s.EVENT_ID, _uuid_text(hi.drop_nulls().to_numpy(), lo.drop_nulls().to_numpy())
        )
        if not self._others.len():
            return uuids
        others = (
            self._others if mask is None else self._others.filter(mask.gather(self._other_rows))
        )
        text = pl.repeat(None, hi.len(), dtype=pl.String, eager=True).alias(s.EVENT_ID)
        if uuids.len():
            text = text.scatter(is_uuid.arg_true(), uuids)
        if others.len():
            text = text.scatter((~is_uuid).arg_true(), others)
        return text


def _uuid_text(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Canonical UUID text from the two 64-bit halves (vectorised: repeats can be many)."""
    rows = len(hi)
    octets = np.stack([hi, lo], axis=1).astype(">u8").view(np.uint8).reshape(rows, 16)
    text = np.full((rows, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS[0::2]] = _HEX[octets >> 4]
    text[:, _UUID_DIGITS[1::2]] = _HEX[octets & 15]
    offsets = np.arange(0, 36 * rows + 1, 36, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())]
    )


@dataclass(frozen=True)
class _Suspects:
    """Remembered IDs of one chunk (``index``) whose hash matched a looked-up one."""

    index: int
    hit: pl.Series
    """Which rows of the chunk."""
    text: pl.Series
    """Those rows' IDs as text."""


def _none_known(ids: pl.Series) -> pl.Series:
    return pl.repeat(False, ids.len(), dtype=pl.Boolean, eager=True)


DetailsLoader = Callable[[], pl.DataFrame]
"""Reads ``event_id``, :data:`CONTENT`, :data:`HOLDER` and :data:`HOLDER_EVENT` of the IDs that
were given without them."""


class SeenIds:
    """A growing set of eventIDs, kept as the chunks it was given (never re-copied)."""

    def __init__(self, ids: pl.Series | None = None, details: DetailsLoader | None = None) -> None:
        self._ids: list[PackedIds] = []
        self._hashes: list[pl.Series] = []
        self._details: list[pl.DataFrame | DetailsLoader | None] = []
        if ids is not None:
            self._remember(ids, details)

    def add(
        self, ids: pl.Series, details: pl.DataFrame | None = None, hashes: pl.Series | None = None
    ) -> None:
        """Remember ``ids`` (which the caller has already checked are new) with, row-aligned,
        their :data:`CONTENT` hash and :data:`HOLDER` / :data:`HOLDER_EVENT` (Categorical keeps
        them small) when the caller wants clashes with them to be told apart; ``hashes``: their
        :meth:`hash_ids`, when the caller has it."""
        self._remember(ids, details, hashes)

    def _remember(
        self,
        ids: pl.Series,
        details: pl.DataFrame | DetailsLoader | None,
        hashes: pl.Series | None = None,
    ) -> None:
        if ids.len():
            self._ids.append(PackedIds(ids))
            self._hashes.append(self.hash_ids(ids) if hashes is None else hashes)
            self._details.append(details)

    def contains(self, ids: pl.Series) -> pl.Series:
        """A boolean mask: which of ``ids`` are already known."""
        return self.lookup(ids).get_column(KNOWN)

    def lookup(self, ids: pl.Series, hashes: pl.Series | None = None) -> pl.DataFrame:
        """Per ID of ``ids``, in order: whether it is known and, if so, the content hash and
        holder it was remembered with (null where not given); ``hashes``: their :meth:`hash_ids`,
        when the caller has it."""
        hashes = self.hash_ids(ids) if hashes is None else hashes
        maybe, suspects = self._suspects(ids, hashes)
        result = pl.DataFrame({KNOWN: maybe})
        nothing = [pl.lit(None, pl.UInt64).alias(CONTENT), pl.lit(None, pl.String).alias(HOLDER),
                   pl.lit(None, pl.String).alias(HOLDER_EVENT)]  # fmt: skip
        if not maybe.any():
            return result.with_columns(nothing)
        found = [
            suspect.text.to_frame().hstack(self._details_of(suspect.index).filter(suspect.hit))
            for suspect in suspects
        ]
        matched = pl.concat(found, how="vertical_relaxed").unique(s.EVENT_ID, keep="first")
        looked = ids.rename(s.EVENT_ID).to_frame().join(
            matched.with_columns(pl.lit(True).alias("_confirmed")),
            on=s.EVENT_ID, how="left", maintain_order="left",
        )  # fmt: skip
        return looked.select(
            pl.col("_confirmed").fill_null(False).alias(KNOWN), CONTENT, HOLDER, HOLDER_EVENT
        )

    def _details_of(self, index: int) -> pl.DataFrame:
        """The details of chunk ``index``, row-aligned with its IDs (loaded on first need)."""
        details = self._details[index]
        if callable(details):
            loaded = details().unique(s.EVENT_ID, keep="first")
            ids = self._ids[index].strings().to_frame()
            details = ids.join(loaded, on=s.EVENT_ID, how="left", maintain_order="left")
            details = details.drop(s.EVENT_ID)
            self._details[index] = details
        if details is None:
            details = pl.DataFrame(schema=_DETAILS).clear(len(self._ids[index]))
        return details.select(
            pl.col(CONTENT).cast(pl.UInt64),
            pl.col(HOLDER).cast(pl.String),
            pl.col(HOLDER_EVENT).cast(pl.String),
        )

    def _suspects(self, ids: pl.Series, hashes: pl.Series) -> tuple[pl.Series, list[_Suspects]]:
        """Which of ``ids`` are known, and the remembered IDs that could be them: per chunk
        holding any, its index, the rows whose hash matched and those rows' text, rebuilt once
        here and used again by :meth:`lookup` to join their details."""
        if not self._hashes:
            return _none_known(ids), []
        known = pl.concat(self._hashes, rechunk=False)
        # The day's known hashes are probed against a set of the few new ones: building a set
        # of all the known ones at every look-up would cost the day's size each time.
        hit = known.is_in(hashes.implode())
        if not hit.any():
            return _none_known(ids), []
        maybe = hashes.is_in(known.filter(hit).implode())
        # Confirm on the strings, against only the known IDs whose hash matched.
        suspects, offset = [], 0
        for index, known_ids in enumerate(self._ids):
            chunk_hit = hit.slice(offset, len(known_ids))
            offset += len(known_ids)
            if chunk_hit.any():
                suspects.append(_Suspects(index, chunk_hit, known_ids.strings(chunk_hit)))
        texts = pl.concat([suspect.text for suspect in suspects])
        return maybe & ids.is_in(texts.implode()), suspects

    @staticmethod
    def hash_ids(ids: pl.Series) -> pl.Series:
        """The 64-bit hashes membership is first tested on (Polars', stable within a process)."""
        return ids.hash()
