"""The actor, key and address rules run once per distinct value, and that changes no row.

:func:`analytics.ingest.identity.normalise` evaluates its rules over the distinct combinations of their
inputs and gathers the results back. Here the same rules, evaluated on every row, are the
reference: for frames of repeated, null, empty and hostile values the two agree row for row.
"""

from __future__ import annotations

from typing import Any

import polars as pl
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
    gathered = identity.per_distinct(frame, INPUTS, _rules(c))
    assert gathered.equals(per_event)


def test_the_gather_keeps_row_order_and_null_inputs_match_each_other() -> None:
    frame = pl.DataFrame(
        {"a": [None, "x", None, "y", "x", None], "b": ["1", None, "1", "2", None, None]}
    )
    out = identity.per_distinct(frame, ["a", "b"], [pl.concat_str("a", "b").alias("ab")])
    assert out["ab"].to_list() == [None, None, None, "y2", None, None]
    out = identity.per_distinct(
        frame, ["a", "b"], [pl.coalesce("a", "b", pl.lit("-")).alias("first")]
    )
    assert out["first"].to_list() == ["1", "x", "1", "y", "x", "-"]
