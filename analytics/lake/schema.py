"""The lake's schemas: the one place that names columns and their Arrow types.

Every other module derives column names from the constants here, so a rename is a one-line
change and a typo is an import error rather than a silently empty column. Analysts reading the
lake with DuckDB, Spark or Athena see exactly these names and types.
"""

from __future__ import annotations

import pyarrow as pa

# --- event columns (LAKE/events/event_date=YYYY-MM-DD/*.parquet) -----------------------------

EVENT_ID = "event_id"
EVENT_TIME = "event_time"
EVENT_DATE = "event_date"
EVENT_VERSION = "event_version"
EVENT_SOURCE = "event_source"
EVENT_NAME = "event_name"
EVENT_TYPE = "event_type"
EVENT_CATEGORY = "event_category"
AWS_REGION = "aws_region"
RECIPIENT_ACCOUNT_ID = "recipient_account_id"
PRINCIPAL_TYPE = "principal_type"
PRINCIPAL_ARN = "principal_arn"
PRINCIPAL_ACCOUNT_ID = "principal_account_id"
ACTOR = "actor"
SESSION_NAME = "session_name"
INVOKED_BY = "invoked_by"
SOURCE_IP = "source_ip"
SOURCE_SERVICE = "source_service"
USER_AGENT = "user_agent"
ERROR_CODE = "error_code"
ERROR_MESSAGE = "error_message"
READ_ONLY = "read_only"
MANAGEMENT_EVENT = "management_event"
KEY_ARN = "key_arn"
KEY_ACCOUNT_ID = "key_account_id"
REQUEST_PARAMETERS = "request_parameters"
RESPONSE_ELEMENTS = "response_elements"
ENCRYPTION_CONTEXT = "encryption_context"
ADDITIONAL_EVENT_DATA = "additional_event_data"
SERVICE_EVENT_DETAILS = "service_event_details"
SHARED_EVENT_ID = "shared_event_id"
REQUEST_ID = "request_id"
VPC_ENDPOINT_ID = "vpc_endpoint_id"
SOURCE_OBJECT = "source_object"

_UTC_US = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field(EVENT_ID, pa.string(), nullable=False),
        pa.field(EVENT_TIME, _UTC_US, nullable=False),
        pa.field(EVENT_DATE, pa.date32(), nullable=False),
        pa.field(EVENT_VERSION, pa.string()),
        pa.field(EVENT_SOURCE, pa.string()),
        pa.field(EVENT_NAME, pa.string()),
        pa.field(EVENT_TYPE, pa.string()),
        pa.field(EVENT_CATEGORY, pa.string()),
        pa.field(AWS_REGION, pa.string()),
        pa.field(RECIPIENT_ACCOUNT_ID, pa.string()),
        pa.field(PRINCIPAL_TYPE, pa.string()),
        pa.field(PRINCIPAL_ARN, pa.string()),
        pa.field(PRINCIPAL_ACCOUNT_ID, pa.string()),
        pa.field(ACTOR, pa.string()),
        pa.field(SESSION_NAME, pa.string()),
        pa.field(INVOKED_BY, pa.string()),
        pa.field(SOURCE_IP, pa.string()),
        pa.field(SOURCE_SERVICE, pa.string()),
        pa.field(USER_AGENT, pa.string()),
        pa.field(ERROR_CODE, pa.string()),
        pa.field(ERROR_MESSAGE, pa.string()),
        pa.field(READ_ONLY, pa.bool_()),
        pa.field(MANAGEMENT_EVENT, pa.bool_()),
        pa.field(KEY_ARN, pa.string()),
        pa.field(KEY_ACCOUNT_ID, pa.string()),
        pa.field(REQUEST_PARAMETERS, pa.string()),
        pa.field(RESPONSE_ELEMENTS, pa.string()),
        pa.field(ENCRYPTION_CONTEXT, pa.string()),
        pa.field(ADDITIONAL_EVENT_DATA, pa.string()),
        pa.field(SERVICE_EVENT_DETAILS, pa.string()),
        pa.field(SHARED_EVENT_ID, pa.string()),
        pa.field(REQUEST_ID, pa.string()),
        pa.field(VPC_ENDPOINT_ID, pa.string()),
        pa.field(SOURCE_OBJECT, pa.string(), nullable=False),
    ]
)
"""One row per unique CloudTrail ``eventID``.

``actor`` is the stable identity baselines are kept for (role ARN for assumed roles, user ARN,
``root:<account>``, ``service:<name>``); ``principal_arn`` is the identity exactly as logged.
``source_ip`` holds only real IP addresses; service names and "AWS Internal" go to
``source_service``. JSON-valued fields are kept verbatim as JSON text so nothing the record said
is lost; they are attacker-influenced and must be escaped wherever they are shown.
"""

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
PARTITION_COLUMNS: tuple[str, ...] = (EVENT_DATE,)
"""Columns that live in the partition folder's name (``event_date=YYYY-MM-DD``), not in the
files: every table under ``events/``, ``features/``, ``alerts/`` and ``incidents/`` is read with
them added back from the path, which is how Hive, Athena, Trino and Spark see a partition."""
EVENT_FILE_SCHEMA = EVENT_SCHEMA.remove(EVENT_SCHEMA.get_field_index(EVENT_DATE))
"""The event columns as stored in each file: :data:`EVENT_SCHEMA` without the partition."""
UNIQUE_PER_EVENT_COLUMNS: tuple[str, ...] = (
    EVENT_ID, EVENT_TIME, REQUEST_ID, SHARED_EVENT_ID, REQUEST_PARAMETERS, RESPONSE_ELEMENTS,
    ENCRYPTION_CONTEXT, ADDITIONAL_EVENT_DATA, SERVICE_EVENT_DETAILS,
)  # fmt: skip
"""Event columns whose values rarely repeat: stored without a Parquet dictionary."""

# --- source object state (LAKE/_state/objects.parquet) -------------------------------------

OBJ_KEY = "object_key"
OBJ_ETAG = "etag"
OBJ_SIZE = "size"
OBJ_MTIME = "mtime"
OBJ_STATUS = "status"
OBJ_EVENTS = "events"
OBJ_RECORDS_QUARANTINED = "records_quarantined"
OBJ_REASON = "reason"
OBJ_NOTE = "note"
OBJ_DATES_SEEN = "dates_seen"
OBJ_DATES_WRITTEN = "dates_written"
OBJ_INGESTED_AT = "ingested_at"

STATUS_INGESTED = "ingested"
STATUS_QUARANTINED = "quarantined"

OBJECT_STATE_SCHEMA = pa.schema(
    [
        pa.field(OBJ_KEY, pa.string(), nullable=False),
        pa.field(OBJ_ETAG, pa.string()),
        pa.field(OBJ_SIZE, pa.int64()),
        pa.field(OBJ_MTIME, _UTC_US),
        pa.field(OBJ_STATUS, pa.string(), nullable=False),
        pa.field(OBJ_EVENTS, pa.int64()),
        pa.field(OBJ_RECORDS_QUARANTINED, pa.int64()),
        pa.field(OBJ_REASON, pa.string()),
        pa.field(OBJ_NOTE, pa.string()),
        pa.field(OBJ_DATES_SEEN, pa.list_(pa.date32())),
        pa.field(OBJ_DATES_WRITTEN, pa.list_(pa.date32())),
        pa.field(OBJ_INGESTED_AT, _UTC_US),
    ]
)
"""One row per source object ever read. An object is read again only when its ETag (S3) or
size and mtime (local files) change, or when a run wants event dates it holds that an earlier,
narrower run left out (``dates_seen`` minus ``dates_written``). ``status`` says whether it landed
or was quarantined, ``reason`` why it was quarantined."""


def empty_events() -> pa.Table:
    """An empty table in the event schema (useful as a neutral element when concatenating)."""
    return EVENT_SCHEMA.empty_table()


# --- alerts (LAKE/alerts/event_date=YYYY-MM-DD/alerts.parquet) -------------------------------

ALERT_ID = "alert_id"
DETECTOR = "detector"
SEVERITY = "severity"
SCORE = "score"
WINDOW_START = "window_start"
WINDOW_END = "window_end"
ACCOUNT_ID = "account_id"
TITLE = "title"
REASON = "reason"
BASELINE = "baseline"
TOP_FEATURES = "top_features"
OBSERVED_PATTERN = "observed_pattern"
EVIDENCE_EVENT_IDS = "evidence_event_ids"
EVIDENCE_COUNT = "evidence_count"
MITRE = "mitre_attack"
RUNBOOK = "runbook"
SUPPRESSED_BY = "suppressed_by"
INCIDENT_ID = "incident_id"
RELATED_KEY_ARNS = "related_key_arns"

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
"""Ordered from least to most severe; OCSF severity_id is the index + 1."""

OBSERVED_PATTERNS: tuple[str, ...] = (
    "UNSEEN", "RARE", "SURGE", "OFF_HOURS", "FAILURES", "CHANGE", "EXPOSURE", "BLIND_SPOT",
)  # fmt: skip
"""What was unusual, in GuardDuty/OCSF terms: never seen before, seldom seen, far above the
usual volume, outside the actor's hours, a burst of failures, a configuration change, a key
opened to outsiders, or a gap in what CloudTrail records."""

MAX_EVIDENCE_IDS = 50

FEATURE_STRUCT = pa.struct(
    [
        pa.field("name", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("usual", pa.float64()),
        pa.field("contribution", pa.float64()),
        pa.field("text", pa.string()),
    ]
)

ALERT_SCHEMA = pa.schema(
    [
        pa.field(ALERT_ID, pa.string(), nullable=False),
        pa.field(DETECTOR, pa.string(), nullable=False),
        pa.field(SEVERITY, pa.string(), nullable=False),
        pa.field(SCORE, pa.float64()),
        pa.field(EVENT_DATE, pa.date32(), nullable=False),
        pa.field(WINDOW_START, _UTC_US, nullable=False),
        pa.field(WINDOW_END, _UTC_US, nullable=False),
        pa.field(ACCOUNT_ID, pa.string()),
        pa.field(AWS_REGION, pa.string()),
        pa.field(KEY_ARN, pa.string()),
        pa.field(RELATED_KEY_ARNS, pa.list_(pa.string())),
        pa.field(ACTOR, pa.string()),
        pa.field(INVOKED_BY, pa.string()),
        pa.field(TITLE, pa.string(), nullable=False),
        pa.field(REASON, pa.string(), nullable=False),
        pa.field(BASELINE, pa.string()),
        pa.field(TOP_FEATURES, pa.list_(FEATURE_STRUCT)),
        pa.field(OBSERVED_PATTERN, pa.string()),
        pa.field(MITRE, pa.list_(pa.string())),
        pa.field(RUNBOOK, pa.string()),
        pa.field(EVIDENCE_EVENT_IDS, pa.list_(pa.string())),
        pa.field(EVIDENCE_COUNT, pa.int64(), nullable=False),
        pa.field(SUPPRESSED_BY, pa.string()),
        pa.field(INCIDENT_ID, pa.string()),
    ]
)
"""One row per (detector, entity, window). ``alert_id`` is a hash of detector, entity and window
start, so reruns and backfills give the same ID and sinks can de-duplicate on it. ``reason`` is
a plain-language sentence built from record values: escape it wherever it is rendered.
``incident_id`` names the incident the alert belongs to, null for an alert that stands alone."""

ALERT_COLUMNS: tuple[str, ...] = tuple(ALERT_SCHEMA.names)


def conform_alerts(table: pa.Table) -> pa.Table:
    """An alerts table in today's :data:`ALERT_SCHEMA`, whatever version of it was written.

    Alert files written before a column existed lack it; readers fill it with nulls rather
    than fail, so an old lake stays readable after an upgrade."""
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in ALERT_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=ALERT_SCHEMA)


# --- incidents (LAKE/incidents/event_date=YYYY-MM-DD/incidents.parquet) -----------------------

TIMELINE = "timeline"
SUMMARY = "summary"
FIRST_SEEN = "first_seen"
LAST_SEEN = "last_seen"
ACTORS = "actors"
KEY_ARNS = "key_arns"
ACCOUNT_IDS = "account_ids"
DETECTORS = "detectors"
TACTICS = "mitre_tactics"
TECHNIQUES = "mitre_techniques"
ALERT_IDS = "alert_ids"
ALERT_COUNT = "alert_count"
SEVERITY_RAISED_BECAUSE = "severity_raised_because"
LINKS = "links"

TIMELINE_STRUCT = pa.struct(
    [
        pa.field("time", _UTC_US),
        pa.field("what", pa.string()),
        pa.field("detector", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("alert_id", pa.string()),
        pa.field("evidence_count", pa.int64()),
    ]
)

INCIDENT_SCHEMA = pa.schema(
    [
        pa.field(INCIDENT_ID, pa.string(), nullable=False),
        pa.field(EVENT_DATE, pa.date32(), nullable=False),
        pa.field(SEVERITY, pa.string(), nullable=False),
        pa.field(TITLE, pa.string(), nullable=False),
        pa.field(SUMMARY, pa.string(), nullable=False),
        pa.field(SEVERITY_RAISED_BECAUSE, pa.string()),
        pa.field(FIRST_SEEN, _UTC_US, nullable=False),
        pa.field(LAST_SEEN, _UTC_US, nullable=False),
        pa.field(ACTORS, pa.list_(pa.string())),
        pa.field(KEY_ARNS, pa.list_(pa.string())),
        pa.field(ACCOUNT_IDS, pa.list_(pa.string())),
        pa.field(DETECTORS, pa.list_(pa.string())),
        pa.field(TACTICS, pa.list_(pa.string())),
        pa.field(TECHNIQUES, pa.list_(pa.string())),
        pa.field(LINKS, pa.list_(pa.string())),
        pa.field(ALERT_COUNT, pa.int64(), nullable=False),
        pa.field(ALERT_IDS, pa.list_(pa.string())),
        pa.field(TIMELINE, pa.list_(TIMELINE_STRUCT)),
    ]
)
"""One row per incident that has alerts on that day: the alerts of one attack story. Alerts of
one actor within the incident window, and alerts on a key that follow a change to it (disabled,
scheduled for deletion, material deleted, opened to outsiders), are one incident. An incident
that goes on past midnight keeps its ``incident_id`` and appears in each day's file with every
alert it holds so far, so the file of its latest day is its fullest view. ``incident_id`` hashes
the incident's first alert, so reruns and backfills give the same ID. ``links`` says in words
why the alerts belong together; ``severity_raised_because`` why the incident is more severe
than its worst alert, when it is. ``title``, ``summary`` and the timeline's ``what`` are built
from record values: escape them wherever they are rendered."""

INCIDENT_COLUMNS: tuple[str, ...] = tuple(INCIDENT_SCHEMA.names)
