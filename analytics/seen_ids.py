"""The eventIDs a day of the lake already holds, so that each flush of an ingest drops repeats.

A run tests every buffered event against every ID of its day, and a day may hold millions:
building a hash set of strings for each test made de-duplication grow with the day's size.
Membership is therefore tested on 64-bit hashes first (about seven times cheaper) and confirmed
on the strings only for the rare rows whose hash is known, so a hash collision can never drop
an event. Hashes are compared only within one process, where Polars' hash is stable.
"""

from __future__ import annotations

import polars as pl


class SeenIds:
    """A growing set of eventIDs, kept as the chunks it was given (never re-copied)."""

    def __init__(self, ids: pl.Series | None = None) -> None:
        self._ids: list[pl.Series] = []
        self._hashes: list[pl.Series] = []
        if ids is not None:
            self.add(ids)

    def add(self, ids: pl.Series) -> None:
        """Remember ``ids`` (which the caller has already checked are new)."""
        if ids.len():
            self._ids.append(ids)
            self._hashes.append(self._hash(ids))

    def contains(self, ids: pl.Series) -> pl.Series:
        """A boolean mask: which of ``ids`` are already known."""
        if not self._hashes:
            return pl.repeat(False, ids.len(), dtype=pl.Boolean, eager=True)
        hashes = self._hash(ids)
        known = pl.concat(self._hashes, rechunk=False)
        maybe = hashes.is_in(known.implode())
        if not maybe.any():
            return maybe
        # Confirm on the strings, against only the known IDs whose hash matched.
        suspects = pl.concat(self._ids, rechunk=False).filter(
            known.is_in(hashes.filter(maybe).implode())
        )
        return maybe & ids.is_in(suspects.implode())

    @staticmethod
    def _hash(ids: pl.Series) -> pl.Series:
        return ids.hash()
