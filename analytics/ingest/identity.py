"""Principal and key canonicalisation, vectorised.

CloudTrail's quirks are handled here once, so detectors read clean columns:

* ``actor`` — the stable identity baselines are kept for. Assumed roles collapse to the role ARN
  (the session issuer), never the session name or access key, which rotate per call. A service
  acting for a caller (``invokedBy``) leaves the caller as the actor; ``invoked_by`` keeps the
  service. AWS service principals become ``service:<name>``, the root user ``root:<account>``.
* ``key_arn`` — from ``resources[].ARN`` (first ``:key/`` ARN), then ``responseElements.keyId``,
  then ``requestParameters.keyId``; bare key IDs and alias names are made into ARNs with the
  event's region and the caller's account (a bare ID can only name a key of the caller's own
  account). An alias that cannot be resolved stays an alias ARN.
* ``source_ip`` keeps only real IPv4/IPv6 addresses; service DNS names and ``AWS Internal``
  go to ``source_service``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from analytics.lake import schema as s

KMS_SOURCE = "kms.amazonaws.com"
AWS_INTERNAL = "AWS Internal"

_IPV4 = r"^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
_IPV6 = r"^[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[A-Za-z0-9]+)?$|^::ffff:[0-9.]+$"
_ASSUMED_ROLE_ARN = r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/(.*)$"
_KEY_OR_ALIAS_ARN_ACCOUNT = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:(\d{12}):(?:key|alias)/"
_UNRESOLVED_ALIAS = "alias/"

_JSON_INPUTS = ("requestParameters", "responseElements", "additionalEventData",
                "serviceEventDetails")  # fmt: skip
_COMPUTED_FROM = ("eventTime", "eventSource", "awsRegion", "recipientAccountId",
                  "sourceIPAddress", "requestKeyId", "resourceKeyArn", "uiType", "uiPrincipalId",
                  "uiArn", "uiAccountId", "uiUserName", "uiInvokedBy", "uiIdentityProvider",
                  "uiIssuerArn", "uiOnBehalfOfUserId")  # fmt: skip
"""The inputs the rules below read: the only columns that go through Polars."""

_TAKEN_OVER = {
    s.EVENT_ID: "eventID", s.EVENT_VERSION: "eventVersion", s.EVENT_SOURCE: "eventSource",
    s.EVENT_NAME: "eventName", s.EVENT_TYPE: "eventType", s.EVENT_CATEGORY: "eventCategory",
    s.AWS_REGION: "awsRegion", s.RECIPIENT_ACCOUNT_ID: "recipientAccountId",
    s.PRINCIPAL_TYPE: "uiType", s.PRINCIPAL_ARN: "uiArn", s.PRINCIPAL_ACCOUNT_ID: "uiAccountId",
    s.INVOKED_BY: "uiInvokedBy", s.USER_AGENT: "userAgent", s.ERROR_CODE: "errorCode",
    s.ERROR_MESSAGE: "errorMessage", s.READ_ONLY: "readOnly",
    s.MANAGEMENT_EVENT: "managementEvent", s.REQUEST_PARAMETERS: "requestParameters",
    s.RESPONSE_ELEMENTS: "responseElements", s.ENCRYPTION_CONTEXT: "encryptionContext",
    s.ADDITIONAL_EVENT_DATA: "additionalEventData",
    s.SERVICE_EVENT_DETAILS: "serviceEventDetails", s.SHARED_EVENT_ID: "sharedEventID",
    s.REQUEST_ID: "requestID", s.VPC_ENDPOINT_ID: "vpcEndpointId",
    s.SOURCE_OBJECT: "sourceObject",
}  # fmt: skip
"""Event columns that are an input as it is: taken over as Arrow arrays, never copied through
Polars (most of an event's bytes are in them: the JSON fields, the user agent)."""


def _arrow(values: Sequence[object] | pa.Array, kind: pa.DataType) -> pa.Array:
    """An input column as an Arrow array of ``kind``. The scanner's text arrives as
    ``large_string``, whose cast to ``string`` keeps the data buffer (only offsets are copied);
    Python values (the reference decoder's) are built into Arrow by Polars, about twice as fast
    as ``pa.array``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(kind)
    dtype = pl.Boolean if kind == pa.bool_() else pl.String
    built = pl.Series(values=values, dtype=dtype).to_arrow(compat_level=pl.CompatLevel.oldest())
    return built.cast(kind)


def _json_null_to_null(values: pa.Array) -> pa.Array:
    """A JSON field present as a literal ``null`` is no value at all."""
    literal_null = pc.fill_null(pc.equal(values, "null"), False)
    if not pc.any(literal_null).as_py():
        return values
    return pc.if_else(literal_null, pa.scalar(None, values.type), values)


def _response_key_ids(response_elements: pa.Array) -> pl.Series:
    """Each response's ``keyId`` text, where it has one (else null).

    The JSON is parsed only for responses that can hold the key: those whose text contains
    ``keyId`` or an escape that could spell it (most responses of a KMS trail are null or name
    no key); the others are never copied into Polars.
    """
    could = pc.or_(pc.match_substring(response_elements, "keyId"),
                   pc.match_substring(response_elements, "\\u"))  # fmt: skip
    rows = pc.indices_nonzero(pc.fill_null(could, False)).to_numpy()
    found = pl.Series(dtype=pl.String).extend_constant(None, len(response_elements))
    if len(rows):
        texts = pl.Series(response_elements.take(rows)).cast(pl.String)
        found = found.scatter(rows, texts.str.json_path_match("$.keyId"))
    return found.alias(_RESPONSE_KEY)


def _partition(region: pl.Expr) -> pl.Expr:
    """The ARN partition of a region: aws, aws-cn or aws-us-gov."""
    return (
        pl.when(region.str.starts_with("cn-"))
        .then(pl.lit("aws-cn"))
        .when(region.str.starts_with("us-gov-"))
        .then(pl.lit("aws-us-gov"))
        .otherwise(pl.lit("aws"))
    )


def _actor(frame_cols: dict[str, pl.Expr]) -> pl.Expr:
    c = frame_cols
    ptype, arn, account = c["uiType"], c["uiArn"], c["uiAccountId"]
    invoked_by, issuer = c["uiInvokedBy"], c["uiIssuerArn"]
    # One regex pass: the replacement differs from the ARN exactly when the pattern matched.
    rewritten = arn.str.replace(_ASSUMED_ROLE_ARN, "arn:$1:iam::$2:role/$3")
    role_from_session = pl.when(rewritten != arn).then(rewritten)
    who_given = pl.coalesce(c["uiUserName"], c["uiPrincipalId"])
    who = pl.coalesce(who_given, pl.lit(""))
    provider = pl.coalesce(c["uiIdentityProvider"], pl.lit("unknown"))
    service_for_internal = pl.when(invoked_by == AWS_INTERNAL).then(c["eventSource"])
    return (
        pl.when(ptype == "AssumedRole")
        .then(pl.coalesce(issuer, role_from_session, arn))
        .when(ptype.is_in(["IAMUser", "Role"]))
        .then(arn)
        .when(ptype == "Root")
        .then(pl.lit("root:") + pl.coalesce(account, c["recipientAccountId"]))
        .when(ptype == "AWSService")
        .then(pl.lit("service:") + pl.coalesce(invoked_by, c["sourceIPAddress"]))
        .when(ptype == "AWSAccount")
        .then(pl.lit("account:") + account)
        .when(ptype == "FederatedUser")
        .then(pl.coalesce(issuer, arn))
        .when(ptype == "WebIdentityUser")
        .then(pl.lit("web-identity:") + provider + pl.lit("/") + who)
        .when(ptype == "SAMLUser")
        .then(pl.lit("saml:") + provider + pl.lit("/") + who)
        .when(ptype == "IdentityCenterUser")
        .then(
            pl.lit("identity-center:")
            + pl.coalesce(c["uiOnBehalfOfUserId"], c["uiPrincipalId"], pl.lit("unknown"))
        )
        .when(ptype == "Directory")
        .then(pl.lit("directory:") + who)
        .when(ptype.is_null() & invoked_by.is_not_null())
        # KMS-internal service events (RotateKey, DeleteKey) carry no type, only invokedBy.
        .then(pl.lit("service:") + pl.coalesce(service_for_internal, invoked_by))
        .otherwise(
            pl.coalesce(
                arn,
                pl.when(
                    pl.any_horizontal(e.is_not_null() for e in (ptype, account, who_given))
                ).then(pl.lit("unknown:") + pl.coalesce(account, pl.lit("")) + pl.lit("/") + who),
            )
        )
    )


def _response_key(key_id: pl.Expr) -> pl.Expr:
    """The key ARN a response names (CreateKey, DescribeKey, …), if it is one."""
    return pl.when(key_id.str.contains(r"^arn:[^:]+:kms:[^:]*:\d{12}:key/")).then(key_id)


def _key_arn(c: dict[str, pl.Expr]) -> pl.Expr:
    """Resolve the key an event is about (see module docstring for the order)."""
    response_key = _response_key(c[_RESPONSE_KEY])
    request_key = c["requestKeyId"]
    region = c["awsRegion"]
    caller_account = pl.coalesce(c["uiAccountId"], c["recipientAccountId"])
    arn_prefix = (
        pl.lit("arn:") + _partition(region) + pl.lit(":kms:") + region + pl.lit(":")
        + caller_account + pl.lit(":")
    )  # fmt: skip
    resolved_request_key = (
        pl.when(request_key.str.starts_with("arn:"))
        .then(request_key)
        .when(request_key.str.starts_with(_UNRESOLVED_ALIAS))
        .then(arn_prefix + request_key)
        .when(request_key.str.len_chars() > 0)
        .then(arn_prefix + pl.lit("key/") + request_key)
    )
    from_request = pl.when(c["eventSource"] == KMS_SOURCE).then(resolved_request_key)
    return pl.coalesce(c["resourceKeyArn"], response_key, from_request)


# CloudTrail writes "2026-11-28T13:05:12Z"; copies exported by other tools (Panther, Athena
# CTAS, SIEM re-exports) use fractional seconds or a space. All are UTC.
_EVENT_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%.fZ",
)


def _parse_event_times(raw: pl.Series) -> pl.Series:
    """Every eventTime of ``raw`` that can be parsed, by the cheapest means that parses them all."""

    def parse(fmt: str) -> pl.Expr:
        return pl.col("t").str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)

    frame = raw.alias("t").to_frame()
    strict_form = frame.select(parse(_EVENT_TIME_FORMATS[0])).to_series()
    if not (strict_form.is_null() & raw.is_not_null()).any():
        return strict_form
    return frame.select(pl.coalesce([parse(fmt) for fmt in _EVENT_TIME_FORMATS])).to_series()


def _event_times(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Event times and their dates. Parsed per event, not per distinct text: a trail's times are
    nearly all distinct, and encoding them first cost more than it saved."""
    parsed = _parse_event_times(pl.Series(raw).cast(pl.String))
    return parsed.to_arrow(), parsed.dt.date().to_arrow()


def _is_ip(value: pl.Expr) -> pl.Expr:
    return value.str.contains(_IPV4) | value.str.contains(_IPV6)


_ACTOR_INPUTS = ("uiType", "uiArn", "uiAccountId", "uiInvokedBy", "uiIssuerArn", "uiUserName",
                 "uiPrincipalId", "uiIdentityProvider", "uiOnBehalfOfUserId",
                 "recipientAccountId", "eventSource", "sourceIPAddress")  # fmt: skip
_RESPONSE_KEY = "responseKeyId"
_KEY_INPUTS = ("resourceKeyArn", _RESPONSE_KEY, "requestKeyId", "awsRegion", "uiAccountId",
               "recipientAccountId", "eventSource")  # fmt: skip


def _codes(array: pa.Array) -> tuple[np.ndarray, int]:
    """Each row's value as a small integer (0 for null, 1… in order of first appearance) and
    how many values there are, null included: one hash pass, no copy of the text."""
    encoded = pc.dictionary_encode(array)
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes + 1, len(encoded.dictionary) + 1


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """The row where each code first appears, for codes numbered in order of first appearance."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    highest = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate(([True], highest[1:] > highest[:-1])))


def distinct_rows(
    arrays: Sequence[pa.Array], encoded: Sequence[tuple[np.ndarray, int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct combinations of ``arrays`` (equal length; null equals null): the first row
    of each, and for every row the number of its combination (numbered in order of first
    appearance).

    Exact: each column is dictionary-encoded by value (``encoded``: their codes, when the
    caller has them already), and the codes are combined into one integer per row (renumbered
    whenever the product of the columns' sizes could overflow), so two rows share a
    combination only if every input is equal.
    """
    key = np.zeros(len(arrays[0]) if arrays else 0, dtype=np.int64)
    span = 1
    for codes, size in encoded if encoded is not None else map(_codes, arrays):
        if span * size >= 2**62:
            key, span = _renumbered(key)
        key = key * size + codes
        span *= size
    combination, _ = _renumbered(key)
    return _first_rows(combination), combination


def _renumbered(key: np.ndarray) -> tuple[np.ndarray, int]:
    encoded = pc.dictionary_encode(pa.array(key, pa.int64()))
    return encoded.indices.to_numpy().astype(np.int64), len(encoded.dictionary)


def _evaluate(distinct: pa.Table, outputs: Sequence[pl.Expr]) -> pa.Table:
    frame = pl.from_arrow(distinct)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(outputs).to_arrow(compat_level=pl.CompatLevel.oldest())


class RuleMemo:
    """One rule's outputs by combination of its inputs, kept across the chunks of a process.

    The same identities, keys and addresses recur in every chunk of a trail, and evaluating a
    rule's expressions costs Polars a few milliseconds per chunk however few rows it is given;
    remembered, a chunk whose combinations were all seen before skips Polars altogether. The
    rules are pure functions of their inputs, so a remembered output is the one evaluation would
    give. The memo forgets everything once it holds ``max_chars`` characters of inputs and
    outputs, so a trail of ever-new values (hostile or not) costs the evaluation, never memory.
    Threads may share one: each entry is written whole, and a lost count only forgets sooner.
    """

    def __init__(self, max_chars: int = 8_000_000) -> None:
        self.max_chars = max_chars
        self._known: dict[tuple[object, ...], tuple[object, ...]] = {}
        self._chars = 0
        self._schema: pa.Schema | None = None

    def __len__(self) -> int:
        """How many combinations are remembered."""
        return len(self._known)

    def outputs(self, distinct: pa.Table, outputs: Sequence[pl.Expr]) -> pa.Table:
        """``outputs`` over each row of ``distinct`` (rows of distinct inputs), in its order."""
        schema = self._schema
        if not distinct.num_rows:
            return _evaluate(distinct, outputs)
        keys = list(zip(*(column.to_pylist() for column in distinct.columns), strict=True))
        known = self._known
        values = [known.get(key) for key in keys]
        missing = [row for row, value in enumerate(values) if value is None]
        if missing:
            made = _evaluate(distinct.take(pa.array(missing, pa.int64())), outputs)
            schema = self._schema = made.schema
            computed = zip(*(column.to_pylist() for column in made.columns), strict=True)
            added = 0
            for row, value in zip(missing, computed, strict=True):
                values[row] = value
                added += _chars(keys[row]) + _chars(value)
            if self._chars + added > self.max_chars:
                known.clear()
                self._chars = 0
            for row in missing:
                known[keys[row]] = values[row]  # type: ignore[assignment]
            self._chars += added
        assert schema is not None
        columns = zip(*values, strict=True)
        return pa.Table.from_arrays(
            [pa.array(column, field.type) for column, field in zip(columns, schema, strict=True)],
            schema=schema,
        )


def _chars(values: tuple[object, ...]) -> int:
    return sum(len(value) if isinstance(value, str) else 8 for value in values)


def per_distinct(
    inputs: Mapping[str, pa.Array],
    outputs: Sequence[pl.Expr],
    encoded: Mapping[str, tuple[np.ndarray, int]] | None = None,
    memo: RuleMemo | None = None,
) -> dict[str, pa.Array]:
    """``outputs`` (over ``inputs`` only) computed once per distinct combination of ``inputs``
    and gathered back to every row, in the inputs' order, as Arrow arrays by output name.

    CloudTrail repeats its identities, addresses and keys across thousands of events, so the
    regular expressions and string building of the rules below run over hundreds of distinct
    values instead of every event; only those distinct rows ever become Polars values, and with
    a ``memo`` only those the memo has not seen in an earlier chunk.
    """
    codes = [encoded[name] for name in inputs] if encoded is not None else None
    first, combination = distinct_rows(list(inputs.values()), codes)
    distinct = pa.table({name: array.take(first) for name, array in inputs.items()})
    made = _evaluate(distinct, outputs) if memo is None else memo.outputs(distinct, outputs)
    rows = pa.array(combination)
    return {name: made.column(name).combine_chunks().take(rows) for name in made.column_names}


@functools.cache
def _rules() -> tuple[tuple[tuple[str, ...], tuple[pl.Expr, ...]], ...]:
    """Each rule's inputs and the expressions it computes from them: built once per process
    (an expression is immutable), not once per chunk of events."""
    c = {name: pl.col(name) for name in {*_ACTOR_INPUTS, *_KEY_INPUTS}}
    source = c["sourceIPAddress"]
    key_arn = _key_arn(c)
    actor = (
        _actor(c).alias(s.ACTOR),
        pl.when(c["uiType"] == "AssumedRole")
        .then(c["uiArn"].str.extract(_ASSUMED_ROLE_ARN, 4))
        .alias(s.SESSION_NAME),
    )
    key = (
        key_arn.alias(s.KEY_ARN),
        key_arn.str.extract(_KEY_OR_ALIAS_ARN_ACCOUNT, 1).alias(s.KEY_ACCOUNT_ID),
    )
    address = (
        pl.when(_is_ip(source)).then(source).alias(s.SOURCE_IP),
        pl.when(~_is_ip(source)).then(source).alias(s.SOURCE_SERVICE),
    )
    return (_ACTOR_INPUTS, actor), (_KEY_INPUTS, key), (("sourceIPAddress",), address)


@functools.cache
def _memos() -> tuple[RuleMemo, ...]:
    """One memo per rule of :func:`_rules`, shared by every chunk this process normalises."""
    return tuple(RuleMemo() for _ in _rules())


def normalise(columns: Mapping[str, Sequence[object] | pa.Array]) -> pa.Table:
    """Build the event-schema table from the raw columns of :mod:`analytics.ingest.cloudtrail`.

    Every event column is either an input taken over as it is (:data:`_TAKEN_OVER`) or computed
    by the rules below once per distinct combination of their inputs. Rows are never dropped
    here; rows lacking required fields keep nulls and are found by :func:`missing_required`.
    """
    length = len(columns["eventID"])
    taken: dict[str, pa.Array] = {}
    for out, name in _TAKEN_OVER.items():
        kind = s.EVENT_SCHEMA.field(out).type
        taken[out] = _arrow(columns[name], kind)
        if name in _JSON_INPUTS:
            taken[out] = _json_null_to_null(taken[out])
    by_input = {name: out for out, name in _TAKEN_OVER.items()}
    inputs = {
        name: taken[by_input[name]] if name in by_input else _arrow(columns[name], pa.string())
        for name in _COMPUTED_FROM
    }
    inputs[_RESPONSE_KEY] = _response_key_ids(taken[s.RESPONSE_ELEMENTS]).to_arrow(
        compat_level=pl.CompatLevel.oldest()
    )
    # Inputs shared by two rules (accounts, event source, address) are encoded once.
    shared = dict.fromkeys(name for names, _ in _rules() for name in names)
    encoded = {name: _codes(inputs[name]) for name in shared}
    made: dict[str, pa.Array] = {}
    for (names, outputs), memo in zip(_rules(), _memos(), strict=True):
        made.update(per_distinct({name: inputs[name] for name in names}, outputs, encoded, memo))
    made[s.EVENT_TIME], made[s.EVENT_DATE] = _event_times(inputs["eventTime"])
    arrays = []
    for field in s.EVENT_SCHEMA:
        array = taken.get(field.name)
        if array is None:
            array = made[field.name].cast(field.type)
        assert len(array) == length
        arrays.append(array)
    nullable = pa.schema([f.with_nullable(True) for f in s.EVENT_SCHEMA])
    return pa.Table.from_arrays(arrays, schema=nullable)


def missing_required(table: pa.Table) -> pl.Series | None:
    """A boolean mask of rows lacking ``eventID`` or a parseable ``eventTime`` (None if none)."""
    frame = pl.from_arrow(table.select([s.EVENT_ID, s.EVENT_TIME]))
    assert isinstance(frame, pl.DataFrame)
    mask = frame.select(
        (
            pl.col(s.EVENT_ID).is_null()
            | (pl.col(s.EVENT_ID) == "")
            | pl.col(s.EVENT_TIME).is_null()
        ).alias("missing")
    ).to_series()
    return mask if mask.any() else None


def conform(table: pa.Table) -> pa.Table:
    """Cast a table whose rows all have their required fields to the exact event schema."""
    return table.cast(s.EVENT_SCHEMA)
