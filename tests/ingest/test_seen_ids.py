"""De-duplication's memory of a day's eventIDs: hashes first, strings to confirm."""

from __future__ import annotations

import polars as pl

from analytics.ingest.seen_ids import CONTENT, HOLDER, HOLDER_EVENT, SeenIds


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


def _details(content: list[int], holders: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {CONTENT: content, HOLDER: holders, HOLDER_EVENT: ["Decrypt"] * len(holders)},
        schema_overrides={CONTENT: pl.UInt64},
    )


def test_a_repeat_is_looked_up_with_its_content_and_holder() -> None:
    loads: list[int] = []

    def lake_details() -> pl.DataFrame:
        loads.append(1)
        return pl.DataFrame({"event_id": ["b", "a"]}).hstack(_details([22, 11], ["o-b", "o-a"]))

    seen = SeenIds(ids("a", "b"), lake_details)
    seen.add(ids("c"), _details([33], ["o-c"]))
    assert seen.lookup(ids("x", "c")).rows() == [(False, None, None, None),
                                                 (True, 33, "o-c", "Decrypt")]  # fmt: skip
    assert loads == []  # no repeat of a lake ID yet: the lake's details were never read
    looked = seen.lookup(ids("a", "z", "b"))
    assert looked.rows() == [(True, 11, "o-a", "Decrypt"), (False, None, None, None),
                             (True, 22, "o-b", "Decrypt")]  # fmt: skip
    seen.lookup(ids("b"))
    assert loads == [1]  # read once, then kept


def test_a_collision_never_lends_one_id_the_content_of_another() -> None:
    seen = _EverythingCollides(ids("a"))
    seen.add(ids("b"), _details([2], ["o-b"]))
    assert seen.lookup(ids("b", "q")).rows() == [(True, 2, "o-b", "Decrypt"),
                                                 (False, None, None, None)]  # fmt: skip
