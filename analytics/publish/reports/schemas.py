"""The report tables' schemas: one Arrow schema per file under ``LAKE/reports/D/``.

Report files are read by auditors' spreadsheets and by analysts' DuckDB alike, so their columns
are declared once, here, with the same names the event and alert schemas use where a column
means the same thing (``key_arn``, ``actor``, ``aws_region`` …). Builders conform their output to
these schemas, so an empty day still writes files with every column, and a type drift is an
error at write time rather than a surprise in someone's notebook.
"""

from __future__ import annotations

import pyarrow as pa

from analytics.lake import schema as s

_UTC_US = pa.timestamp("us", tz="UTC")

NAME_COUNT = pa.struct([pa.field("name", pa.string()), pa.field("count", pa.int64())])
"""A (value, count) pair: calls by operation, by actor, errors by code …"""

# --- shared column names (those not already in analytics.lake.schema) ---------------------------

ALIASES = "aliases"
CALLS = "calls"
ERRORS = "errors"
FIRST_CALL = "first_call"
LAST_CALL = "last_call"
KEY_ID = "key_id"
KEY_MANAGER = "key_manager"
KEY_SPEC = "key_spec"
ORIGIN = "origin"
CUSTOM_KEY_STORE_ID = "custom_key_store_id"
KEY_STATE = "key_state"
PENDING_DELETION = "pending_deletion"
DELETION_DATE = "deletion_date"
ROTATION_STATUS = "rotation_status"
ROTATION_ENABLED = "rotation_enabled"
NEXT_ROTATION_DUE = "next_rotation_due"
OVERDUE = "overdue"
ALERTS = "alerts"
ALERT_IDS = "alert_ids"

# --- key_usage.parquet ------------------------------------------------------------------------

KEY_USAGE_SCHEMA = pa.schema(
    [
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(s.KEY_ARN, pa.string(), nullable=False),
        pa.field(s.ACCOUNT_ID, pa.string()),
        pa.field(s.AWS_REGION, pa.string()),
        pa.field(ALIASES, pa.list_(pa.string())),
        pa.field(CALLS, pa.int64(), nullable=False),
        pa.field(ERRORS, pa.int64(), nullable=False),
        pa.field("calls_by_operation", pa.list_(NAME_COUNT)),
        pa.field("top_actors", pa.list_(NAME_COUNT)),
        pa.field("other_actors", pa.int64(), nullable=False),
        pa.field("other_actor_calls", pa.int64(), nullable=False),
        pa.field("errors_by_code", pa.list_(NAME_COUNT)),
        pa.field("distinct_actors", pa.int64(), nullable=False),
        pa.field("distinct_source_ips", pa.int64(), nullable=False),
        pa.field("distinct_caller_accounts", pa.int64(), nullable=False),
        pa.field("caller_accounts", pa.list_(pa.string())),
        pa.field("cross_account_calls", pa.int64(), nullable=False),
        pa.field("new_actors", pa.list_(pa.string())),
        pa.field(ALERTS, pa.int64(), nullable=False),
        pa.field("suppressed_alerts", pa.int64(), nullable=False),
        pa.field(ALERT_IDS, pa.list_(pa.string())),
        pa.field(FIRST_CALL, _UTC_US),
        pa.field(LAST_CALL, _UTC_US),
    ]
)
"""One row per KMS key used on the day (the key as the lake resolved it: a key ARN, or an alias
ARN when no key could be resolved). ``top_actors`` holds the N busiest actors; ``other_actors``
and ``other_actor_calls`` say how many actors and calls the rest were. ``new_actors`` are actors
that used the key on this day and never before in the lake."""

# --- key_usage_by_actor.parquet ---------------------------------------------------------------

ACTOR_USAGE_SCHEMA = pa.schema(
    [
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(s.ACTOR, pa.string(), nullable=False),
        pa.field(s.PRINCIPAL_ACCOUNT_ID, pa.string()),
        pa.field(CALLS, pa.int64(), nullable=False),
        pa.field(ERRORS, pa.int64(), nullable=False),
        pa.field("keys", pa.list_(NAME_COUNT)),
        pa.field("distinct_keys", pa.int64(), nullable=False),
        pa.field("new_keys", pa.list_(pa.string())),
        pa.field("calls_without_key", pa.int64(), nullable=False),
        pa.field("source_ips", pa.list_(pa.string())),
        pa.field("invoked_by", pa.list_(pa.string())),
    ]
)
"""One row per actor that called KMS on the day: the keys it used (with call counts, busiest
first), the keys it used for the first time, and its calls that named no key (ListKeys,
GenerateRandom)."""

# --- rotation.parquet -------------------------------------------------------------------------

ROTATION_SCHEMA = pa.schema(
    [
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(s.KEY_ARN, pa.string(), nullable=False),
        pa.field(s.ACCOUNT_ID, pa.string()),
        pa.field(s.AWS_REGION, pa.string()),
        pa.field(ALIASES, pa.list_(pa.string())),
        pa.field(KEY_MANAGER, pa.string()),
        pa.field(KEY_SPEC, pa.string()),
        pa.field(ORIGIN, pa.string()),
        pa.field(CUSTOM_KEY_STORE_ID, pa.string()),
        pa.field(KEY_STATE, pa.string()),
        pa.field(PENDING_DELETION, pa.bool_(), nullable=False),
        pa.field(DELETION_DATE, _UTC_US),
        pa.field(ROTATION_STATUS, pa.string(), nullable=False),
        pa.field("automatic_rotation_possible", pa.bool_()),
        pa.field("not_applicable_reason", pa.string()),
        pa.field("unknown_reason", pa.string()),
        pa.field(ROTATION_ENABLED, pa.bool_()),
        pa.field("rotation_period_days", pa.int32()),
        pa.field("rotation_source", pa.string(), nullable=False),
        pa.field("rotation_changed_at", _UTC_US),
        pa.field("rotation_changed_by", pa.string()),
        pa.field("last_rotation_at", _UTC_US),
        pa.field("last_rotation_type", pa.string()),
        pa.field("automatic_rotations_seen", pa.int64(), nullable=False),
        pa.field("on_demand_rotations_seen", pa.int64(), nullable=False),
        pa.field(NEXT_ROTATION_DUE, pa.date32()),
        pa.field(OVERDUE, pa.bool_()),
        pa.field("days_overdue", pa.int32()),
        pa.field("note", pa.string()),
    ]
)
"""One row per key seen in the lake up to the report day (plus, with ``--inventory``, every key
the KMS API listed). ``rotation_status`` is one of :data:`ROTATION_STATUSES`;
``rotation_source`` says whether the rotation facts came from CloudTrail history or the KMS API.
``overdue`` is null when the next due date cannot be known. ``unknown_reason`` says, for an
UNKNOWN row, what the lake lacks (one of
:data:`analytics.publish.reports.rotation.UNKNOWN_REASONS`, so rows group by it)."""

ROTATION_STATUSES: tuple[str, ...] = (
    "OVERDUE", "DISABLED", "UNKNOWN", "ENABLED", "AWS_MANAGED", "NOT_APPLICABLE", "DELETED",
)  # fmt: skip
"""Most to least in need of attention. NOT_APPLICABLE keys cannot rotate automatically
(asymmetric, HMAC, imported material, custom key store): not a failure, a fact to record."""

# --- policy_changes.parquet -------------------------------------------------------------------

POLICY_CHANGES_SCHEMA = pa.schema(
    [
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(s.EVENT_TIME, _UTC_US, nullable=False),
        pa.field(s.EVENT_ID, pa.string(), nullable=False),
        pa.field("change_kind", pa.string(), nullable=False),
        pa.field(s.EVENT_NAME, pa.string(), nullable=False),
        pa.field(s.KEY_ARN, pa.string()),
        pa.field(s.ACCOUNT_ID, pa.string()),
        pa.field(s.AWS_REGION, pa.string()),
        pa.field(s.ACTOR, pa.string()),
        pa.field(s.PRINCIPAL_ARN, pa.string()),
        pa.field(s.SOURCE_IP, pa.string()),
        pa.field(s.USER_AGENT, pa.string()),
        pa.field(s.ERROR_CODE, pa.string()),
        pa.field("succeeded", pa.bool_(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),
        # key policy changes
        pa.field("previous_event_id", pa.string()),
        pa.field("previous_event_time", _UTC_US),
        pa.field("previous_actor", pa.string()),
        pa.field("policy_error", pa.string()),
        pa.field("principals_added", pa.list_(pa.string())),
        pa.field("principals_removed", pa.list_(pa.string())),
        pa.field("actions_added", pa.list_(pa.string())),
        pa.field("actions_removed", pa.list_(pa.string())),
        pa.field("conditions_added", pa.list_(pa.string())),
        pa.field("conditions_removed", pa.list_(pa.string())),
        pa.field("accounts_added", pa.list_(pa.string())),
        pa.field("accounts_removed", pa.list_(pa.string())),
        pa.field("outside_accounts_added", pa.list_(pa.string())),
        pa.field("public_actions", pa.list_(pa.string())),
        # grants
        pa.field("grant_id", pa.string()),
        pa.field("grant_name", pa.string()),
        pa.field("grantee_principal", pa.string()),
        pa.field("retiring_principal", pa.string()),
        pa.field("grant_operations", pa.list_(pa.string())),
        pa.field("grant_constraints", pa.string()),
        pa.field("grantee_outside", pa.bool_()),
    ]
)
"""One row per PutKeyPolicy, CreateKey-with-a-policy, CreateGrant, RetireGrant and RevokeGrant
on the report day, failed calls included (``succeeded`` false, nothing diffed). Policy rows say
what changed against the previous known policy of the key (``previous_*`` null when none is
known: everything then counts as added). Grant rows name the grantee and operations; for a
retire or revoke they are taken from the CreateGrant that made the grant, when the lake has it.
"""

CHANGE_POLICY = "key_policy"
CHANGE_GRANT = "grant"

# --- keys.parquet -----------------------------------------------------------------------------

KEYS_SCHEMA = pa.schema(
    [
        pa.field(s.EVENT_DATE, pa.date32(), nullable=False),
        pa.field(s.KEY_ARN, pa.string(), nullable=False),
        pa.field(KEY_ID, pa.string()),
        pa.field(s.ACCOUNT_ID, pa.string()),
        pa.field(s.AWS_REGION, pa.string()),
        pa.field(ALIASES, pa.list_(pa.string())),
        pa.field(KEY_MANAGER, pa.string()),
        pa.field(KEY_SPEC, pa.string()),
        pa.field(ORIGIN, pa.string()),
        pa.field(KEY_STATE, pa.string()),
        pa.field(PENDING_DELETION, pa.bool_(), nullable=False),
        pa.field(DELETION_DATE, _UTC_US),
        pa.field("first_seen", _UTC_US),
        pa.field("last_seen", _UTC_US),
        pa.field("last_used", _UTC_US),
        pa.field("calls_on_day", pa.int64(), nullable=False),
        pa.field(ROTATION_STATUS, pa.string(), nullable=False),
        pa.field(ROTATION_ENABLED, pa.bool_()),
        pa.field(NEXT_ROTATION_DUE, pa.date32()),
        pa.field("policy_known", pa.bool_(), nullable=False),
        pa.field("policy_set_at", _UTC_US),
        pa.field("policy_set_by", pa.string()),
        pa.field("policy_event_id", pa.string()),
        pa.field("policy_principals", pa.list_(pa.string())),
        pa.field("policy_outside_accounts", pa.list_(pa.string())),
        pa.field("policy_public_actions", pa.list_(pa.string())),
        pa.field("active_grants", pa.int64(), nullable=False),
        pa.field("grantees", pa.list_(pa.string())),
        pa.field("outside_grantees", pa.list_(pa.string())),
        pa.field("alerts_on_day", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)
"""One row per key seen up to the report day: the key management evidence an auditor asks for.
``policy_*`` describe the last key policy the lake saw for the key (CreateKey or PutKeyPolicy);
``policy_outside_accounts`` are accounts it names that are neither the key's own nor in the
organisation. ``active_grants`` counts grants created and not yet retired or revoked, as far as
the lake's history shows. ``source`` is ``cloudtrail``, ``kms-api`` or ``cloudtrail+kms-api``."""

REPORT_TABLES: dict[str, pa.Schema] = {
    "key_usage": KEY_USAGE_SCHEMA,
    "key_usage_by_actor": ACTOR_USAGE_SCHEMA,
    "rotation": ROTATION_SCHEMA,
    "policy_changes": POLICY_CHANGES_SCHEMA,
    "keys": KEYS_SCHEMA,
}
"""Every table a daily report writes, by file stem (``<stem>.parquet`` and ``<stem>.csv``)."""
