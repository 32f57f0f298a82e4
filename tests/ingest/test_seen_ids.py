"""De-duplication's memory of a day's eventIDs: hashes first, strings to confirm."""

from __future__ import annotations

import polars as pl

from analytics.seen_ids import SeenIds


def ids(*values: str) -> pl.Series:
    return pl.Series("event_id", values, dtype=pl.String)


def test_new_and_known_ids_are_told_apart() -> None:
    seen = SeenIds(ids("a", "b"))
    seen.add(ids("c"))
    assert seen.contains(ids("c", "d", "a", "e")).to_list() == [True, False, True, False]


def test_an_empty_memory_knows_nothing() -> None:
    assert SeenIds().contains(ids("a", "b")).to_list() == [False, False]
    assert SeenIds(ids()).contains(ids()).to_list() == []


class _EverythingCollides(SeenIds):
    """Every ID hashes alike: only the confirmation on strings can tell them apart."""

    @staticmethod
    def _hash(values: pl.Series) -> pl.Series:
        return pl.repeat(7, values.len(), dtype=pl.UInt64, eager=True)


def test_a_hash_collision_never_drops_a_new_event() -> None:
    seen = _EverythingCollides(ids("a", "b"))
    assert seen.contains(ids("x", "b", "y")).to_list() == [False, True, False]
