"""De-duplication's memory of a day's eventIDs: hashes first, strings to confirm."""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from analytics.ingest.seen_ids import (
    CONTENT,
    HOLDER,
    HOLDER_EVENT,
    ID_HASH,
    PackedIds,
    SeenIds,
    merge_hashes,
    with_merge_hashes,
)
from analytics.lake import schema as s


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
    def hash_ids(values: pl.Series) -> pl.Series:
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


def test_hashes_made_by_a_read_task_equal_those_the_merge_would_make() -> None:
    def column(field: pa.Field) -> pa.Array:
        if field.name == s.EVENT_ID:
            return pa.array(["a", "b", "a"])
        if field.nullable:
            return pa.nulls(3, field.type)
        return pa.array(
            [0, 0, 0], pa.int32() if pa.types.is_date32(field.type) else pa.int64()
        ).cast(field.type)

    table = pa.table({field.name: column(field) for field in s.EVENT_SCHEMA})
    carried = with_merge_hashes(table)
    assert carried.num_columns == table.num_columns + 2
    plain, computed = merge_hashes(table)
    restored, taken = merge_hashes(carried)
    assert plain.equals(table) and restored.equals(table)
    assert taken.equals(computed)
    assert taken.get_column(ID_HASH).to_list()[0] == taken.get_column(ID_HASH).to_list()[2]


UUIDS = st.uuids().map(str)
OTHER_IDS = st.one_of(
    st.text(max_size=40),
    UUIDS.map(str.upper),  # another ID than its lower-case form
    UUIDS.map(lambda u: "{" + u + "}"),
    UUIDS.map(lambda u: u[:-1] + "g"),
)


@given(st.lists(UUIDS | OTHER_IDS, max_size=30), st.data())
def test_packed_ids_give_back_the_text_they_were_given(values: list[str], data: Any) -> None:
    packed = PackedIds(pl.Series(values, dtype=pl.String))
    assert len(packed) == len(values)
    assert packed.strings().to_list() == values
    mask = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    picked = packed.strings(pl.Series(mask, dtype=pl.Boolean)).to_list()
    assert picked == [v for v, keep in zip(values, mask, strict=True) if keep]


def test_uuids_and_other_ids_are_told_apart_exactly_even_when_every_hash_collides() -> None:
    lower = "0a1b2c3d-1111-4222-8333-444455556666"
    seen = _EverythingCollides(ids(lower, "plain"))
    seen.add(ids("ffffffff-ffff-ffff-ffff-ffffffffffff"))
    asked = ids(lower.upper(), lower, "plain", "ffffffff-ffff-ffff-ffff-ffffffffffff", "x")
    assert seen.contains(asked).to_list() == [False, True, True, True, False]
