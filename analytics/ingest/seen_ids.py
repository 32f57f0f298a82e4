"""The eventIDs a day of the lake already holds, so that each flush of an ingest drops repeats
and notices an eventID reused for different content.

A run tests every buffered event against every ID of its day, and a day may hold millions:
building a hash set of strings for each test made de-duplication grow with the day's size.
Membership is therefore tested on 64-bit hashes first (about seven times cheaper) and confirmed
on the strings only for the rare rows whose hash is known, so a hash collision can never drop
an event. Hashes are compared only within one process, where Polars' hash is stable.

Each known ID also carries the hash of its content (:data:`CONTENT_COLUMNS`) and who holds it
(source object and event name), for the rare ID that is seen again. For the IDs already in the
lake these are read from the day's files only when a repeat first turns up, so a run without
repeats pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable

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
_HASH = "id_hash"
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


DetailsLoader = Callable[[], pl.DataFrame]
"""Reads ``event_id``, :data:`CONTENT`, :data:`HOLDER` and :data:`HOLDER_EVENT` of the IDs that
were given without them."""


class SeenIds:
    """A growing set of eventIDs, kept as the chunks it was given (never re-copied)."""

    def __init__(self, ids: pl.Series | None = None, details: DetailsLoader | None = None) -> None:
        self._ids: list[pl.Series] = []
        self._hashes: list[pl.Series] = []
        self._details: list[pl.DataFrame | DetailsLoader | None] = []
        if ids is not None:
            self._remember(ids, details)

    def add(self, ids: pl.Series, details: pl.DataFrame | None = None) -> None:
        """Remember ``ids`` (which the caller has already checked are new) with, row-aligned,
        their :data:`CONTENT` hash and :data:`HOLDER` / :data:`HOLDER_EVENT` (Categorical keeps
        them small) when the caller wants clashes with them to be told apart."""
        self._remember(ids, details)

    def _remember(self, ids: pl.Series, details: pl.DataFrame | DetailsLoader | None) -> None:
        if ids.len():
            self._ids.append(ids)
            self._hashes.append(self._hash(ids))
            self._details.append(details)

    def contains(self, ids: pl.Series) -> pl.Series:
        """A boolean mask: which of ``ids`` are already known."""
        return self.lookup(ids).get_column(KNOWN)

    def lookup(self, ids: pl.Series) -> pl.DataFrame:
        """Per ID of ``ids``, in order: whether it is known and, if so, the content hash and
        holder it was remembered with (null where not given)."""
        maybe = self._maybe(ids)
        result = pl.DataFrame({KNOWN: maybe})
        nothing = [pl.lit(None, pl.UInt64).alias(CONTENT), pl.lit(None, pl.String).alias(HOLDER),
                   pl.lit(None, pl.String).alias(HOLDER_EVENT)]  # fmt: skip
        if not maybe.any():
            return result.with_columns(nothing)
        wanted = self._hash(ids).filter(maybe).implode()
        suspects: list[pl.DataFrame] = []
        for index, (known, hashes) in enumerate(zip(self._ids, self._hashes, strict=True)):
            hit = hashes.is_in(wanted)
            if hit.any():
                found = known.filter(hit).rename(s.EVENT_ID).to_frame()
                suspects.append(found.hstack(self._details_of(index).filter(hit)))
        matched = pl.concat(suspects, how="vertical_relaxed").unique(s.EVENT_ID, keep="first")
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
            ids = self._ids[index].rename(s.EVENT_ID).to_frame()
            details = ids.join(loaded, on=s.EVENT_ID, how="left", maintain_order="left")
            details = details.drop(s.EVENT_ID)
            self._details[index] = details
        if details is None:
            details = pl.DataFrame(schema=_DETAILS).clear(self._ids[index].len())
        return details.select(
            pl.col(CONTENT).cast(pl.UInt64),
            pl.col(HOLDER).cast(pl.String),
            pl.col(HOLDER_EVENT).cast(pl.String),
        )

    def _maybe(self, ids: pl.Series) -> pl.Series:
        if not self._hashes:
            return pl.repeat(False, ids.len(), dtype=pl.Boolean, eager=True)
        hashes = self._hash(ids)
        known = pl.concat(self._hashes, rechunk=False)
        # The day's known hashes are probed against a set of the few new ones: building a set
        # of all the known ones at every look-up would cost the day's size each time.
        hit = known.is_in(hashes.implode())
        if not hit.any():
            return pl.repeat(False, ids.len(), dtype=pl.Boolean, eager=True)
        maybe = hashes.is_in(known.filter(hit).implode())
        # Confirm on the strings, against only the known IDs whose hash matched.
        suspects = pl.concat(self._ids, rechunk=False).filter(hit)
        return maybe & ids.is_in(suspects.implode())

    @staticmethod
    def _hash(ids: pl.Series) -> pl.Series:
        return ids.hash()
