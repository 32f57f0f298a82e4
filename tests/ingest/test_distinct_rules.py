"""The actor, key and address rules run once per distinct value, and that changes no row.

:func:`analytics.ingest.identity.normalise` evaluates its rules over the distinct combinations of their
inputs (each column dictionary-encoded, the codes combined exactly) and gathers the results back. Here the same rules, evaluated on every row, are the
reference: for frames of repeated, null, empty and hostile values the two agree row for row.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from analytics.ingest import identity
from analytics.lake import schema as s
from tests.fuzz_profiles import fuzz_settings

TEXT = st.one_of(
    st.none(),
    st.sampled_from([
        "", "AssumedRole", "IAMUser", "Root", "AWSService", "AWSAccount", "FederatedUser",
        "SAMLUser", "WebIdentityUser", "IdentityCenterUser", "Directory", "AWS Internal",
        "kms.amazonaws.com", "s3.amazonaws.com", "111122223333", "444455556666",
        "arn:aws:sts::111122223333:assumed-role/Admin/alice@example.com",
        "arn:aws:sts::111122223333:assumed-role/Admin/",
        "arn:aws:iam::111122223333:role/Admin", "arn:aws:iam::111122223333:user/bob",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws-cn:kms:cn-north-1:111122223333:alias/prod", "alias/prod",
        "1234abcd-12ab-34cd-56ef-1234567890ab", "us-east-1", "cn-north-1", "us-gov-west-1",
        "203.0.113.7", "2001:db8::1", "::ffff:10.0.0.1", "256.1.1.1", "ec2.amazonaws.com",
        "\u202eevil\u202c", "nul\x00in", "🔑", "'; DROP TABLE events; --", "$1$2",
    ]),
    st.text(max_size=12),
)  # fmt: skip

INPUTS = sorted(set(identity._ACTOR_INPUTS) | set(identity._KEY_INPUTS))


def _rules(c: dict[str, pl.Expr]) -> list[pl.Expr]:
    key_arn = identity._key_arn(c)
    source = c["sourceIPAddress"]
    return [
        identity._actor(c).alias(s.ACTOR),
        key_arn.alias(s.KEY_ARN),
        key_arn.str.extract(identity._KEY_OR_ALIAS_ARN_ACCOUNT, 1).alias(s.KEY_ACCOUNT_ID),
        pl.when(identity._is_ip(source)).then(source).alias(s.SOURCE_IP),
    ]


@st.composite
def frames(draw: Any) -> pl.DataFrame:
    # A few distinct rows, repeated: the shape of real CloudTrail, where identities recur.
    distinct = draw(
        st.lists(st.fixed_dictionaries(dict.fromkeys(INPUTS, TEXT)), min_size=1, max_size=6)
    )
    order = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=1, max_size=40))
    return pl.DataFrame([distinct[i] for i in order], schema=dict.fromkeys(INPUTS, pl.String))


@fuzz_settings()
@given(frames())
def test_rules_per_distinct_value_equal_rules_per_event(frame: pl.DataFrame) -> None:
    c = {name: pl.col(name) for name in INPUTS}
    per_event = frame.select(_rules(c))
    gathered = identity.per_distinct(_arrow(frame, INPUTS), _rules(c))
    assert pl.DataFrame(gathered).equals(per_event)


def _arrow(frame: pl.DataFrame, names: list[str]) -> dict[str, pa.Array]:
    return {name: frame.get_column(name).to_arrow() for name in names}


def test_the_gather_keeps_row_order_and_null_inputs_match_each_other() -> None:
    frame = pl.DataFrame(
        {"a": [None, "x", None, "y", "x", None], "b": ["1", None, "1", "2", None, None]}
    )
    inputs = _arrow(frame, ["a", "b"])
    out = identity.per_distinct(inputs, [pl.concat_str("a", "b").alias("ab")])
    assert out["ab"].to_pylist() == [None, None, None, "y2", None, None]
    out = identity.per_distinct(inputs, [pl.coalesce("a", "b", pl.lit("-")).alias("first")])
    assert out["first"].to_pylist() == ["1", "x", "1", "y", "x", "-"]


def test_distinct_rows_tell_apart_every_column_and_keep_first_appearance() -> None:
    # Many columns of many values: the combined code is renumbered before it could overflow.
    rows = 5_000
    columns = [pa.array([f"{(i * (c + 7)) % (c + 97)}" for i in range(rows)]) for c in range(12)]
    first, combination = identity.distinct_rows(columns)
    tuples = list(zip(*(col.to_pylist() for col in columns), strict=True))
    expected: dict[tuple[str, ...], int] = {}
    for value in tuples:
        expected.setdefault(value, len(expected))
    assert combination.tolist() == [expected[value] for value in tuples]
    assert [tuples[row] for row in first] == list(expected)
    empty, none = identity.distinct_rows([pa.array([], pa.string())])
    assert len(empty) == len(none) == 0


@fuzz_settings()
@given(st.lists(frames(), min_size=1, max_size=4), st.sampled_from([0, 200, 8_000_000]))
def test_a_memo_across_chunks_changes_no_row(chunks: list[pl.DataFrame], max_chars: int) -> None:
    # Chunks that share some combinations and not others, with a memo large, tiny or none.
    c = {name: pl.col(name) for name in INPUTS}
    memo = identity.RuleMemo(max_chars)
    for frame in chunks:
        expected = frame.select(_rules(c))
        gathered = identity.per_distinct(_arrow(frame, INPUTS), _rules(c), memo=memo)
        assert pl.DataFrame(gathered).equals(expected)


def test_a_memo_remembers_what_it_has_evaluated_and_forgets_past_its_bound() -> None:
    rule = [pl.concat_str("a", pl.lit("!")).alias("loud")]
    memo = identity.RuleMemo(max_chars=100)
    first = {"a": pa.array(["x", "y", "x", None])}
    assert identity.per_distinct(first, rule, memo=memo)["loud"].to_pylist() == [
        "x!", "y!", "x!", None
    ]  # fmt: skip
    assert len(memo) == 3  # x, y and null
    again = {"a": pa.array(["y", "x"])}
    assert identity.per_distinct(again, rule, memo=memo)["loud"].to_pylist() == ["y!", "x!"]
    assert len(memo) == 3
    # A value longer than the bound empties the memo before it is remembered, then is kept alone.
    long = "z" * 200
    out = identity.per_distinct({"a": pa.array([long, "x"])}, rule, memo=memo)
    assert out["loud"].to_pylist() == [long + "!", "x!"]
    assert len(memo) == 1
    empty = identity.per_distinct({"a": pa.array([], pa.string())}, rule, memo=memo)
    assert empty["loud"].to_pylist() == []
