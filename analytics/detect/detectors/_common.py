"""Small building blocks shared by the rule detectors.

Every detector filters a day of events down to a handful of event names, reads a few fields out
of the JSON columns, and turns the survivors into findings. The pieces that repeat — which
calls are KMS data-plane calls, what "succeeded" means, how a record value is shown inside a
plain-English reason, how a per-event finding frame is laid out — live here once so that the
detectors agree with each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import polars as pl

from analytics.detect.detectors.base import DetectionContext, HistoryTable
from analytics.ingest.identity import KMS_SOURCE
from analytics.lake import schema as s

__all__ = [
    "CLOUDTRAIL_SOURCE",
    "CONTROL_EVENTS",
    "DATA_PLANE_EVENTS",
    "HUMAN_PRINCIPAL_TYPES",
    "KMS_SOURCE",
    "READ_EVENTS",
    "RULE_EVENT_COLUMNS",
    "SECRET_CONTEXT_KEYS",
    "SECRET_SERVICES",
    "UTC_US",
    "clip_text",
    "distinct_rows",
    "from_source",
    "history_of",
    "hour_text",
    "is_person",
    "key_account",
    "per_event_findings",
    "rule_events",
    "secret_store_decrypt",
    "setting",
    "shown",
    "succeeded",
    "unseen_today",
]

CLOUDTRAIL_SOURCE = "cloudtrail.amazonaws.com"
UTC_US = pl.Datetime("us", "UTC")

DATA_PLANE_EVENTS: tuple[str, ...] = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "ReEncrypt", "Sign", "Verify",
    "GenerateMac", "VerifyMac", "DeriveSharedSecret",
)  # fmt: skip
"""Cryptographic calls that use a key (GenerateRandom is left out: it names no key)."""

READ_EVENTS: frozenset[str] = frozenset(
    (
        *DATA_PLANE_EVENTS,
        "GenerateRandom", "DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus",
        "GetParametersForImport", "GetPublicKey", "GetKeyLastUsage", "ListAliases", "ListGrants",
        "ListKeyPolicies", "ListKeyRotations", "ListKeys", "ListResourceTags",
        "ListRetirableGrants", "DescribeCustomKeyStores",
    )
)  # fmt: skip
"""KMS calls that change nothing. Everything else is a write. Classified by name, not by the
``readOnly`` flag, because the flag was only verified for some operations (reference §3.9)."""

RULE_EVENT_COLUMNS: tuple[str, ...] = (
    s.EVENT_ID, s.EVENT_TIME, s.EVENT_DATE, s.EVENT_SOURCE, s.EVENT_NAME, s.AWS_REGION,
    s.RECIPIENT_ACCOUNT_ID, s.PRINCIPAL_TYPE, s.PRINCIPAL_ACCOUNT_ID, s.ACTOR, s.SESSION_NAME,
    s.INVOKED_BY, s.SOURCE_IP, s.ERROR_CODE, s.ERROR_MESSAGE, s.KEY_ARN, s.KEY_ACCOUNT_ID,
    s.REQUEST_PARAMETERS, s.RESPONSE_ELEMENTS, s.ENCRYPTION_CONTEXT,
)  # fmt: skip
"""The columns of ``DetectionContext.events``: what the rules read, and nothing more. A day of
a large organisation is a million rows; user agents, encryption contexts and source objects
would triple the memory the rules need without any rule looking at them, so the encryption
context and session name are kept only on the rows that need them (see :func:`rule_events`)."""

_RULE_JSON_COLUMNS = (s.REQUEST_PARAMETERS, s.RESPONSE_ELEMENTS)
_SECRET_ONLY_COLUMNS = (s.ENCRYPTION_CONTEXT, s.SESSION_NAME)

SECRET_SERVICES: tuple[str, ...] = ("secretsmanager.amazonaws.com", "ssm.amazonaws.com")
"""Services that decrypt secrets for a caller. Parameter Store also logs as "AWS Internal"
(reference §3.3); its calls are recognised by their ``PARAMETER_ARN`` context instead."""

SECRET_CONTEXT_KEYS: tuple[str, ...] = ("SecretARN", "PARAMETER_ARN")
"""Encryption-context keys naming what Secrets Manager and Parameter Store decrypted."""


def secret_store_decrypt() -> pl.Expr:
    """A KMS ``Decrypt`` that opened a secret or a SecureString parameter: its encryption
    context names one (``SecretARN``/``PARAMETER_ARN``) or a secret store made the call."""
    context = pl.col(s.ENCRYPTION_CONTEXT)
    names_secret = pl.any_horizontal(
        context.str.contains(f'"{key}"', literal=True) for key in SECRET_CONTEXT_KEYS
    )
    return (
        (pl.col(s.EVENT_SOURCE) == KMS_SOURCE)
        & (pl.col(s.EVENT_NAME) == "Decrypt")
        & (names_secret | pl.col(s.INVOKED_BY).is_in(SECRET_SERVICES))
    ).fill_null(False)


def rule_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """The view of a day's events the rules get: :data:`RULE_EVENT_COLUMNS`, with the JSON
    fields of KMS cryptographic calls left out, and the encryption context and session name
    kept only on decrypts of secrets and parameters.

    Rules read request and response JSON only of management calls (policies, grants, aliases,
    deletions, trails); a data-plane call's request is its encryption context, and dropping it
    halves the day's footprint. The one exception is KMS.BulkSecretDecryption, which counts the
    secrets named in the contexts of secret-store decrypts — a small share of a day's calls.
    Tests build their contexts through this view too, so a rule that reads anything else fails
    there, not in production.
    """
    data_plane = (
        (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & pl.col(s.EVENT_NAME).is_in(DATA_PLANE_EVENTS)
    ).fill_null(False)
    kept = (*_RULE_JSON_COLUMNS, *_SECRET_ONLY_COLUMNS)
    secret = secret_store_decrypt()
    return events.select(
        *(pl.col(name) for name in RULE_EVENT_COLUMNS if name not in kept),
        *(pl.when(~data_plane).then(pl.col(name)).alias(name) for name in _RULE_JSON_COLUMNS),
        *(pl.when(secret).then(pl.col(name)).alias(name) for name in _SECRET_ONLY_COLUMNS),
    ).select(RULE_EVENT_COLUMNS)


SHOWN_CHARS = 200
"""Longest record value quoted inside a reason: a 10 kB alias name must not make a 10 kB alert."""

_CONTROL_CHARS = r"[\x00-\x1f\x7f]"


def succeeded() -> pl.Expr:
    """The call succeeded: CloudTrail logs no ``errorCode`` (some exports write an empty one)."""
    code = pl.col(s.ERROR_CODE)
    return code.is_null() | (code == "")


def from_source(source: str, names: Iterable[str]) -> pl.Expr:
    """Events of one service with one of ``names``: event names alone are not unique (Lambda
    and GameLift have their own CreateAlias/UpdateAlias)."""
    return (pl.col(s.EVENT_SOURCE) == source) & pl.col(s.EVENT_NAME).is_in(list(names))


def _control_events(events: pl.LazyFrame) -> pl.LazyFrame:
    kms_write = (pl.col(s.EVENT_SOURCE) == KMS_SOURCE) & ~pl.col(s.EVENT_NAME).is_in(READ_EVENTS)
    return events.filter(kms_write.fill_null(False) & succeeded())


CONTROL_EVENTS = HistoryTable(
    name="control_events",
    description=(
        "every successful KMS call that changes something (policies, key state, aliases, "
        "grants, key material, rotation), whole in the rule view: the few events whose last "
        "known value a rule compares the day against"
    ),
    build=_control_events,
)
"""Management calls are a sliver of a day (the data plane is the bulk), so they are kept as
events rather than summarised: a rule asking "what was this key's policy before today" reads
the events themselves, with their IDs as evidence."""


def history_of(
    ctx: DetectionContext,
    table: HistoryTable,
    predicate: pl.Expr | None = None,
    columns: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """The rows of history ``table`` matching ``predicate``, projected to ``columns``.

    The table is one of the detector's declared :attr:`RuleDetector.history`; the filter comes
    before the projection so the Parquet scan pushes both down.
    """
    try:
        frame = ctx.history[table.name]
    except KeyError:
        raise KeyError(f"history table {table.name!r} is not in this detection context") from None
    if predicate is not None:
        frame = frame.filter(predicate)
    return frame.select(list(columns)) if columns is not None else frame


def unseen_today(
    ctx: DetectionContext, predicate: pl.Expr, table: HistoryTable, pair: Sequence[str]
) -> pl.DataFrame:
    """The day's events matching ``predicate`` whose ``pair`` of columns is not among the rows
    of history ``table`` (the distinct pairs of the same predicate, day by day), sorted by
    time: the shared core of the first-seen rules.

    The history is read only for the keys seen today (``pair`` starts with the key ARN).
    """
    today = ctx.events.filter(predicate)
    if today.is_empty():
        return today
    keys = today.get_column(s.KEY_ARN).unique()
    seen = (
        history_of(ctx, table, columns=pair)
        .filter(pl.col(s.KEY_ARN).is_in(keys.implode()))
        .unique()
        .collect()
    )
    return today.join(seen, on=list(pair), how="anti").sort(s.EVENT_TIME, s.EVENT_ID)


def distinct_rows(
    name: str, description: str, predicate: pl.Expr, columns: Sequence[str], version: int = 1
) -> HistoryTable:
    """A history table of the distinct ``columns`` of the events matching ``predicate``: what a
    first-seen question needs of the past, a few rows per day however busy the day was."""
    kept = list(columns)

    def build(events: pl.LazyFrame) -> pl.LazyFrame:
        return events.filter(predicate.fill_null(False)).select(kept).unique()

    return HistoryTable(name=name, description=description, build=build, version=version)


def shown(value: pl.Expr, fallback: str = "unknown", limit: int = SHOWN_CHARS) -> pl.Expr:
    """A record value as it may appear inside a reason: control characters blanked, clipped to
    ``limit`` characters, ``fallback`` when missing. Renderers still escape it."""
    flat = value.cast(pl.String).str.replace_all(_CONTROL_CHARS, " ")
    clipped = (
        pl.when(flat.str.len_chars() > limit)
        .then(flat.str.slice(0, limit) + pl.lit("…"))
        .otherwise(flat)
    )
    return clipped.fill_null(pl.lit(fallback))


def clip_text(value: object, limit: int = SHOWN_CHARS) -> str:
    """The Python twin of :func:`shown`, for reasons built in a helper loop."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(value))
    return text if len(text) <= limit else text[:limit] + "…"


def key_account() -> pl.Expr:
    """The account that owns the key of an event, else the account whose trail logged it."""
    return pl.coalesce(pl.col(s.KEY_ACCOUNT_ID), pl.col(s.RECIPIENT_ACCOUNT_ID))


def hour_text(start: pl.Expr) -> pl.Expr:
    """'13:00–14:00 UTC' for an hour bucket that starts at ``start``."""
    return pl.format(
        "{}–{} UTC",
        start.dt.strftime("%H:%M"),
        start.dt.offset_by("1h").dt.strftime("%H:%M"),
    )


def per_event_findings(
    events: pl.DataFrame,
    *,
    reason: pl.Expr,
    severity: pl.Expr,
    pattern: str,
    baseline: pl.Expr | None = None,
    key_arn: pl.Expr | None = None,
    account_id: pl.Expr | None = None,
    evidence: pl.Expr | None = None,
) -> pl.DataFrame:
    """One finding per event: the event's own time is its window and its ID the evidence
    (``evidence`` may add the IDs of earlier events that the finding rests on).

    Used for configuration changes, where each call is a fact worth its own alert.
    """
    check_pattern(pattern)
    evidence_ids = evidence if evidence is not None else pl.concat_list(pl.col(s.EVENT_ID))
    return events.sort(s.EVENT_TIME, s.EVENT_ID).select(
        (key_arn if key_arn is not None else pl.col(s.KEY_ARN)).alias(s.KEY_ARN),
        pl.col(s.ACTOR),
        (account_id if account_id is not None else key_account()).alias(s.ACCOUNT_ID),
        pl.col(s.AWS_REGION),
        pl.col(s.INVOKED_BY),
        pl.col(s.EVENT_TIME).alias(s.WINDOW_START),
        pl.col(s.EVENT_TIME).alias(s.WINDOW_END),
        reason.alias(s.REASON),
        (baseline if baseline is not None else pl.lit(None, pl.String)).alias(s.BASELINE),
        pl.lit(pattern).alias(s.OBSERVED_PATTERN),
        evidence_ids.alias(s.EVIDENCE_EVENT_IDS),
        evidence_ids.list.len().cast(pl.Int64).alias(s.EVIDENCE_COUNT),
        severity.alias(s.SEVERITY),
    )


HUMAN_PRINCIPAL_TYPES: tuple[str, ...] = ("IAMUser", "IdentityCenterUser", "SAMLUser", "Root")
"""``userIdentity.type`` values that are people (IAM users are mostly people or their scripts)."""

_SSO_ROLE = r":role/(?:[^:]*/)?AWSReservedSSO_"
_EMAIL_SESSION = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def is_person(session_name: pl.Expr | None = None) -> pl.Expr:
    """The caller is a person: an IAM user, an Identity Center or SAML user, the root user, an
    ``AWSReservedSSO_`` permission-set role, or (when ``session_name`` is given) a role assumed
    with an e-mail address as its session name — how people's federated sessions are named."""
    person = pl.col(s.PRINCIPAL_TYPE).is_in(HUMAN_PRINCIPAL_TYPES) | pl.col(s.ACTOR).str.contains(
        _SSO_ROLE
    )
    if session_name is not None:
        person = person | session_name.str.contains(_EMAIL_SESSION)
    return person.fill_null(False)


def check_pattern(pattern: str) -> str:
    if pattern not in s.OBSERVED_PATTERNS:
        raise ValueError(f"unknown observed pattern {pattern!r}")
    return pattern


_T = TypeVar("_T")


def setting(
    ctx: DetectionContext, defaults: Mapping[str, Any], name: str, kind: Callable[[Any], _T]
) -> _T:
    """A threshold from ``ctx.settings``, else the detector's default, converted by ``kind``.

    Settings come from a TOML file a person edits, so ``"20"`` for an int is accepted and a
    value of the wrong shape fails loudly with the setting's name.
    """
    value = ctx.settings.get(name, defaults[name])
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        expected = getattr(kind, "__name__", repr(kind))
        raise ValueError(f"setting {name}={value!r} is not a valid {expected}") from exc
