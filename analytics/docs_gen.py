"""Generate ``docs/detectors.md`` and ``docs/lake-schema.md`` from the code that defines them.

A catalogue written by hand drifts the first time someone adds a detector or a column. These two
documents are therefore rendered from the detector registry, the model's metadata and the Arrow
schemas, and ``tests/docs`` fails when the committed files differ from what this module renders.
What the code cannot say — what a column means to an analyst, the name of an ATT&CK technique —
lives in the mappings below, next to the generator; a new column or technique without an entry
here is an error that names what to add.

    python -m analytics.docs_gen           # rewrite both files
    python -m analytics.docs_gen --check   # exit 1 and name the stale files
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from analytics import sql
from analytics.detect import features, history, incidents, model
from analytics.detect import scoring as detect
from analytics.detect.detectors.registry import ALL_DETECTORS
from analytics.lake import schema as s

REPO = Path(__file__).resolve().parent.parent
DETECTORS_DOC = Path("docs/detectors.md")
SCHEMA_DOC = Path("docs/lake-schema.md")
REGENERATE = "python -m analytics.docs_gen"

# --- what the code cannot say -----------------------------------------------------------------

MITRE_TECHNIQUES: dict[str, str] = {
    "T1078": "Valid Accounts",
    "T1078.004": "Valid Accounts: Cloud Accounts",
    "T1098": "Account Manipulation",
    "T1485": "Data Destruction",
    "T1486": "Data Encrypted for Impact",
    "T1490": "Inhibit System Recovery",
    "T1530": "Data from Cloud Storage",
    "T1537": "Transfer Data to Cloud Account",
    "T1552": "Unsecured Credentials",
    "T1555": "Credentials from Password Stores",
    "T1555.006": "Credentials from Password Stores: Cloud Secrets Management Stores",
    "T1562": "Impair Defenses",
    "T1562.008": "Impair Defenses: Disable or Modify Cloud Logs",
    "T1565": "Data Manipulation",
    "T1580": "Cloud Infrastructure Discovery",
}
"""Names of the ATT&CK techniques the detectors map to (from attack.mitre.org)."""

MODEL_DESCRIPTION = (
    "An isolation forest scores every hour of every (key, actor) pair against that pair's own "
    "history: volume against its usual volume at that hour of day and against its busiest "
    "hours, error ratio, origins never seen for the actor (source IP, region, user agent "
    "family, caller account), a key new to the actor, hours the actor does not normally work, "
    "and how many keys it touched. It is trained on the baseline window and scores the day; an "
    "hour is flagged when it scores below the `score_quantile` of the training rows, or when its "
    "calls exceed `surge_factor` times the pair's busiest hours, and it has at least "
    "`min_calls` calls or an origin never seen. The reason names the features that drove the "
    "score (found by resetting each to its usual value). High needs a surge or failures *and* a "
    "new origin. An actor with no history in the baseline window is never flagged (the "
    "first-seen rules report it), and a known actor's first use of a key is at most low, its "
    "reason saying there is no history. When one actor's flagged hours of a day span several "
    "keys they are one alert for the actor (no key ARN; the reason names how many keys and "
    "which). With less than `min_history_days` of history the model is silent and says so; AWS "
    "service principals are left to the rules."
)
"""What the model detector means, for the catalogue (``MODEL_INFO`` has no description)."""

MODEL_FEATURE_TEXT: dict[str, str] = {
    "volume_vs_usual": "log2 of calls against the pair's median for this hour of day "
    "(weekday/weekend), silent days counted",
    "volume_vs_peak": "log2 of calls against the pair's p99 busiest hour in the window",
    "error_ratio_excess": "share of failed calls above the pair's usual error ratio",
    "new_source_ips": "source IPs never seen for the actor",
    "new_regions": "regions never used by the actor",
    "new_user_agents": "user agent families never seen for the actor",
    "new_key_for_actor": "1 when the actor never used this key in the window",
    "off_hours": "-log10 of the actor's share of calls at this hour of day (0 busiest, 3 never)",
    "new_caller_accounts": "calling accounts never seen on the key",
    "keys_vs_usual": "log2 of keys the actor touched this hour against its p99",
}

EVENT_COLUMNS: dict[str, str] = {
    s.EVENT_ID: "CloudTrail `eventID`; unique in the lake (duplicate deliveries are dropped)",
    s.EVENT_TIME: "`eventTime`, UTC",
    s.EVENT_DATE: "UTC date of `event_time`; the partition, in the folder name "
    "(`event_date=YYYY-MM-DD`), not inside the files",
    s.EVENT_VERSION: "`eventVersion` of the record format",
    s.EVENT_SOURCE: "the service called, e.g. `kms.amazonaws.com`, `cloudtrail.amazonaws.com`",
    s.EVENT_NAME: "the API action, e.g. `Decrypt`, `PutKeyPolicy`, `ScheduleKeyDeletion`",
    s.EVENT_TYPE: "`AwsApiCall`, `AwsServiceEvent` (e.g. automatic rotation), `AwsConsoleSignIn`",
    s.EVENT_CATEGORY: "`Management`, `Data` or `Insight`",
    s.AWS_REGION: "region the call was made in",
    s.RECIPIENT_ACCOUNT_ID: "account that received the call (the trail's account)",
    s.PRINCIPAL_TYPE: "`userIdentity.type`: `AssumedRole`, `IAMUser`, `Root`, `AWSService`, …",
    s.PRINCIPAL_ARN: "`userIdentity.arn` as logged (an assumed-role session ARN, say)",
    s.PRINCIPAL_ACCOUNT_ID: "account of the caller (`userIdentity.accountId`)",
    s.ACTOR: "the stable identity baselines are kept for: role ARN for assumed roles, user ARN, "
    "`root:<account>`, `service:<name>`, … (see docs/design.md)",
    s.SESSION_NAME: "the assumed-role session name, kept apart from `actor`",
    s.INVOKED_BY: "the AWS service that made the call on the actor's behalf, if any",
    s.SOURCE_IP: "`sourceIPAddress` when it is an IP address",
    s.SOURCE_SERVICE: "`sourceIPAddress` when it is not an IP: a service name or `AWS Internal`",
    s.USER_AGENT: "`userAgent` (untrusted text)",
    s.ERROR_CODE: "`errorCode`; null when the call succeeded",
    s.ERROR_MESSAGE: "`errorMessage` (untrusted text)",
    s.READ_ONLY: "`readOnly`: KMS cryptographic calls and reads are true",
    s.MANAGEMENT_EVENT: "`managementEvent`",
    s.KEY_ARN: "the KMS key the call used: from `resources`, `responseElements.keyId` or "
    "`requestParameters.keyId`; an alias ARN when the alias could not be resolved",
    s.KEY_ACCOUNT_ID: "account that owns `key_arn`",
    s.REQUEST_PARAMETERS: "`requestParameters` as JSON text",
    s.RESPONSE_ELEMENTS: "`responseElements` as JSON text",
    s.ENCRYPTION_CONTEXT: "`requestParameters.encryptionContext` as JSON text: which object, "
    "secret or parameter was protected",
    s.ADDITIONAL_EVENT_DATA: "`additionalEventData` as JSON text",
    s.SERVICE_EVENT_DETAILS: "`serviceEventDetails` as JSON text (e.g. RotateKey details)",
    s.SHARED_EVENT_ID: "`sharedEventID`: the same call logged in the caller's and the key "
    "owner's account",
    s.REQUEST_ID: "`requestID`",
    s.VPC_ENDPOINT_ID: "`vpcEndpointId` when the call came through a VPC endpoint",
    s.SOURCE_OBJECT: "the log object the event was read from: `s3://bucket/key`, or its path "
    "relative to the source folder",
}

ALERT_COLUMNS: dict[str, str] = {
    s.ALERT_ID: "stable ID: a hash of detector, key, actor and merge window; sinks de-duplicate "
    "on it",
    s.DETECTOR: "the detector's ID, e.g. `KMS.KeyPolicyChanged` (see docs/detectors.md)",
    s.SEVERITY: "`info`, `low`, `medium`, `high` or `critical`",
    s.SCORE: "model alerts: how unusual the hour was (higher is more unusual); null for rules",
    s.EVENT_DATE: "the scored day (the partition)",
    s.WINDOW_START: "start of the activity the alert covers (UTC)",
    s.WINDOW_END: "end of that activity (UTC, exclusive)",
    s.ACCOUNT_ID: "account that owns the key (or where the change happened)",
    s.AWS_REGION: "region of the activity",
    s.KEY_ARN: "the key concerned; null for alerts about trails or accounts, and for a model "
    "alert about one actor's unusual use of several keys (a sweep)",
    s.RELATED_KEY_ARNS: "a sweep's keys, most used first (null for other alerts); incidents "
    "list them among the keys they touched",
    s.ACTOR: "who did it (same meaning as in events)",
    s.INVOKED_BY: "AWS service that acted for the actor, if any",
    s.TITLE: "the detector's title",
    s.REASON: "what happened, in plain words with the numbers (untrusted: built from records)",
    s.BASELINE: "what it was compared with (model and volume rules)",
    s.TOP_FEATURES: "model alerts: the features that drove the score, with value, usual value, "
    "contribution and a sentence",
    s.OBSERVED_PATTERN: "what was unusual: `UNSEEN`, `RARE`, `SURGE`, `OFF_HOURS`, `FAILURES`, "
    "`CHANGE`, `EXPOSURE`, `BLIND_SPOT`",
    s.MITRE: "ATT&CK technique IDs",
    s.RUNBOOK: "how to respond, numbered steps",
    s.EVIDENCE_EVENT_IDS: f"`event_id`s that prove the alert (at most {s.MAX_EVIDENCE_IDS})",
    s.EVIDENCE_COUNT: "how many events the finding covered (may exceed the IDs kept)",
    s.SUPPRESSED_BY: "`id` of the suppression that silenced it, else null",
    s.INCIDENT_ID: "the incident the alert belongs to (see Incidents below); null for an alert "
    "that stands alone, and for alerts written before incidents existed",
}

INCIDENT_COLUMNS: dict[str, str] = {
    s.INCIDENT_ID: "stable ID: a hash of the incident's first alert, kept while the incident "
    "goes on (past midnight, on reruns and backfills)",
    s.EVENT_DATE: "the scored day whose alerts extended the incident (the partition)",
    s.SEVERITY: "its worst alert's severity, raised one step by a combination of findings "
    "(see `severity_raised_because`)",
    s.TITLE: "the leading alert's title, the other findings, actors and keys (untrusted: built "
    "from records)",
    s.SUMMARY: "what happened, in a few sentences (untrusted: built from records)",
    s.SEVERITY_RAISED_BECAUSE: "why the incident is more severe than its worst alert, else null",
    s.FIRST_SEEN: "start of its first alert's window (UTC)",
    s.LAST_SEEN: "end of its last alert's window (UTC)",
    s.ACTORS: "the actors of its alerts, sorted",
    s.KEY_ARNS: "the keys of its alerts, sorted",
    s.ACCOUNT_IDS: "accounts of its alerts, actors and keys, sorted",
    s.DETECTORS: "detectors that fired, sorted",
    s.TACTICS: "ATT&CK tactics of its techniques, in ATT&CK's order (reconnaissance to impact)",
    s.TECHNIQUES: "ATT&CK technique IDs of its alerts, sorted",
    s.LINKS: "why its alerts belong together, in words (same actor; on a key after it was "
    "made unusable or opened to new principals)",
    s.ALERT_COUNT: "how many alerts it holds, earlier days' included",
    s.ALERT_IDS: "its alerts' `alert_id`s, in time order (earlier days' alerts included)",
    s.TIMELINE: f"one entry per alert, in time order (at most {incidents.TIMELINE_LIMIT}): see "
    "below",
}

TIMELINE_STRUCT_FIELDS: dict[str, str] = {
    "time": "start of the alert's window (UTC)",
    "what": "the alert's reason, on one line and clipped (untrusted: built from records)",
    "detector": "the detector that fired",
    "severity": "the alert's severity",
    "alert_id": "the alert, in the alerts file of its day",
    "evidence_count": "how many events the alert covered",
}

FEATURE_STRUCT_FIELDS: dict[str, str] = {
    "name": "model feature (see docs/detectors.md)",
    "value": "its value in the flagged hour",
    "usual": "its typical value in the training rows",
    "contribution": "how much the anomaly score drops when the feature is reset to `usual`",
    "text": "the feature in words, with the hour's numbers",
}

OBJECT_STATE_COLUMNS: dict[str, str] = {
    s.OBJ_KEY: "the log object: `s3://bucket/key`, or its path relative to the source folder",
    s.OBJ_ETAG: "S3 ETag, or size and mtime for local files: a change means read it again",
    s.OBJ_SIZE: "bytes",
    s.OBJ_MTIME: "last modified (UTC)",
    s.OBJ_STATUS: "`ingested` or `quarantined`",
    s.OBJ_EVENTS: "events the object held",
    s.OBJ_RECORDS_QUARANTINED: "records of the object refused one by one",
    s.OBJ_REASON: "why the object was quarantined",
    s.OBJ_NOTE: "something repaired on the way in, e.g. invalid UTF-8 replaced",
    s.OBJ_DATES_SEEN: "event dates the object holds",
    s.OBJ_DATES_WRITTEN: "event dates written from it so far (a `--start/--end` run writes "
    "only its dates)",
    s.OBJ_INGESTED_AT: "when it was last read (UTC)",
}

FEATURE_COLUMNS: dict[str, str] = {
    s.EVENT_DATE: "UTC day (the partition)",
    "hour_start": "start of the hour (UTC)",
    "hour_of_day": "0–23",
    "iso_weekday": "1 (Monday) – 7 (Sunday)",
    s.KEY_ARN: "the key; null for calls that name none (ListKeys, GenerateRandom, …)",
    s.ACTOR: "the actor",
    s.KEY_ACCOUNT_ID: "account that owns the key",
    "calls": "KMS calls in the hour",
    "decrypt_calls": "`Decrypt`",
    "encrypt_calls": "`Encrypt`",
    "generate_data_key_calls": "`GenerateDataKey*`",
    "re_encrypt_calls": "`ReEncrypt`",
    "sign_verify_mac_calls": "`Sign`, `Verify`, `GenerateMac`, `VerifyMac`, `DeriveSharedSecret`",
    "management_calls": "calls that change keys, policies, grants, aliases",
    "read_calls": "`Describe*`, `Get*`, `List*`, `GenerateRandom`",
    "errors": "failed calls (dry runs excluded)",
    "access_denied_errors": "`AccessDenied*`, `UnauthorizedOperation`",
    "invalid_ciphertext_errors": "`InvalidCiphertextException`, `IncorrectKeyException`, "
    "`InvalidKeyUsageException`",
    "invalid_state_errors": "`KMSInvalidStateException`, `DisabledException`, "
    "`KeyUnavailableException`, `NotFoundException`",
    "throttling_errors": "`ThrottlingException`, `LimitExceededException`, `RequestLimitExceeded`",
    "dry_run_errors": "`DryRunOperationException`",
    "via_service_calls": "calls made by an AWS service for the actor (`invoked_by` set)",
    "cross_account_calls": "calls by an account other than the key's owner",
    "source_ips": "distinct source IPs, sorted",
    "user_agent_families": "distinct user agent families (the user agent's first word)",
    "regions": "distinct regions",
    "context_shapes": "distinct encryption-context key sets, e.g. `aws:s3:arn`",
    "caller_accounts": "distinct calling accounts",
    "invoked_by_services": "distinct services that called for the actor",
    "first_event_time": "first call in the hour",
    "last_event_time": "last call in the hour",
    "distinct_source_ips": "length of `source_ips`",
    "distinct_user_agent_families": "length of `user_agent_families`",
    "distinct_regions": "length of `regions`",
    "distinct_context_shapes": "length of `context_shapes`",
    "distinct_caller_accounts": "length of `caller_accounts`",
    "via_service_share": "`via_service_calls / calls`",
}


# --- helpers ----------------------------------------------------------------------------------


class DocsError(RuntimeError):
    """The code has something the generator cannot describe yet; the message says what to add."""


def _attribute_docstrings(module: Any) -> dict[str, str]:
    """Docstrings written under module-level assignments (``X = ...`` then a string)."""
    tree = ast.parse(inspect.getsource(module))
    found: dict[str, str] = {}
    body = tree.body
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = inspect.cleandoc(following.value.value)
    return found


def _prose(text: str) -> str:
    """A docstring as Markdown: reST double backquotes become code spans, lines joined."""
    paragraphs = [" ".join(part.split()) for part in text.replace("``", "`").split("\n\n")]
    return "\n\n".join(paragraphs)


def _type_name(kind: pa.DataType) -> str:
    if pa.types.is_timestamp(kind):
        return f"timestamp ({kind.unit}, {kind.tz})" if kind.tz else f"timestamp ({kind.unit})"
    if pa.types.is_date32(kind):
        return "date"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return f"int{kind.bit_width}"
    if pa.types.is_floating(kind):
        return f"float{kind.bit_width}"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"list<{_type_name(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct"
    return str(kind)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _columns_table(
    schema: pa.Schema, descriptions: Mapping[str, str], where: str, nullability: bool = True
) -> list[str]:
    missing = [name for name in schema.names if name not in descriptions]
    stale = [name for name in descriptions if name not in schema.names]
    if missing or stale:
        raise DocsError(
            f"{where}: describe {missing} / drop {stale} in analytics/docs_gen.py, then run "
            f"{REGENERATE}"
        )
    header = "| column | type | null | meaning |" if nullability else "| column | type | meaning |"
    rule = "|---|---|---|---|" if nullability else "|---|---|---|"
    lines = [header, rule]
    for field in schema:
        null = "" if field.nullable else "never"
        cells = [f"`{field.name}`", _type_name(field.type)]
        if nullability:
            cells.append(null)
        cells.append(_cell(descriptions[field.name]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _header(source: str) -> list[str]:
    return [
        f"<!-- Generated by `{REGENERATE}` from {source}.",
        "     Do not edit by hand: change the code, or the descriptions in analytics/docs_gen.py,",
        "     and regenerate. tests/docs fails when this file is out of date. -->",
        "",
    ]


def _technique(technique: str) -> str:
    if technique not in MITRE_TECHNIQUES:
        raise DocsError(f"name ATT&CK technique {technique} in MITRE_TECHNIQUES (docs_gen.py)")
    path = technique.replace(".", "/")
    return (
        f"[{technique}](https://attack.mitre.org/techniques/{path}/) {MITRE_TECHNIQUES[technique]}"
    )


def _anchor(detector_id: str) -> str:
    return detector_id.lower().replace(".", "")


def _samples(detector_id: str) -> str | None:
    folder = REPO / "tests" / "detectors" / "samples" / detector_id.removeprefix("KMS.")
    if not folder.is_dir():
        return None
    counts = []
    for kind in ("positive", "negative"):
        sub = folder / kind
        n = sum(1 for p in sub.iterdir() if p.is_file()) if sub.is_dir() else 0
        counts.append(f"{n} {kind}")
    relative = folder.relative_to(REPO).as_posix()
    return f"[`{relative}/`](../{relative}/) ({', '.join(counts)})"


# --- the detector catalogue -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Entry:
    id: str
    title: str
    severity: str
    mitre_attack: tuple[str, ...]
    description: str
    runbook: str
    settings: dict[str, Any]
    section: str
    kind: str


def _entries() -> list[_Entry]:
    rules = [
        _Entry(
            id=d.id,
            title=d.title,
            severity=d.severity,
            mitre_attack=d.mitre_attack,
            description=d.description,
            runbook=d.runbook,
            settings=dict(d.defaults),
            section=f'[detectors."{d.id}"]',
            kind="rule",
        )
        for d in ALL_DETECTORS
    ]
    info = detect.MODEL_INFO
    defaults = model.ModelSettings()
    learned = _Entry(
        id=info.id,
        title=info.title,
        severity=info.severity,
        mitre_attack=info.mitre_attack,
        description=MODEL_DESCRIPTION,
        runbook=info.runbook,
        settings={f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)},
        section="[model]",
        kind="isolation forest",
    )
    return [*rules, learned]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if not isinstance(value, str) else f'"{value}"'


def _runbook(text: str) -> list[str]:
    """Runbooks are numbered steps, one per line or run together; either way, a list."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        parts = []
        rest = lines[0]
        for number in range(2, 20):
            head, sep, tail = rest.partition(f" {number}. ")
            if not sep:
                break
            parts.append(head)
            rest = f"{number}. {tail}"
        lines = [*parts, rest]
    return lines


def render_detectors() -> str:
    """``docs/detectors.md``: every detector keytrail runs, with what it means and what to do."""
    entries = _entries()
    out = _header(
        "the detector registry (analytics/detect/detectors/) and analytics/detect/scoring.py"
    )
    out += [
        "# Detector catalogue",
        "",
        f"keytrail runs {len(entries) - 1} rule detectors and one learned detector on every "
        "scored day. Each has a stable ID that is never renamed or reused: alert IDs hash it, "
        "suppressions and SIEM searches name it. Rules are deterministic and never miss what "
        "they describe; the isolation forest finds usage that is unusual for the key and actor "
        "concerned. Every alert carries its reason in plain words, the evidence event IDs and "
        "the runbook below.",
        "",
        "Severity is the detector's default; several detectors raise or lower it per finding, "
        "as their descriptions say. Thresholds are set in `keytrail.toml` "
        "([configuration reference](configuration.md)); an alert that is expected can be "
        "silenced by a suppression with an owner, a reason and an expiry "
        "([suppressions](configuration.md#suppressions)). To see what a threshold change would "
        "have fired, use `keytrail detect --dry-run` or `notebooks/03_tune_detection.ipynb`.",
        "",
        "| ID | severity | ATT&CK | title |",
        "|---|---|---|---|",
    ]
    for e in entries:
        mitre = ", ".join(e.mitre_attack)
        out.append(f"| [`{e.id}`](#{_anchor(e.id)}) | {e.severity} | {mitre} | {e.title} |")
    for e in entries:
        if out[-1]:
            out.append("")
        out += [f"## {e.id}", "", f"**{e.title}** — {e.kind}, severity **{e.severity}**", ""]
        out.append("ATT&CK: " + "; ".join(_technique(t) for t in e.mitre_attack))
        out += ["", "### What it means", "", e.description, ""]
        if e.id == model.DETECTOR_ID:
            out += ["Features, each relative to the pair's or the actor's own baseline:", ""]
            missing = [f for f in model.MODEL_FEATURES if f not in MODEL_FEATURE_TEXT]
            if missing:
                raise DocsError(f"describe model features {missing} in MODEL_FEATURE_TEXT")
            out += [f"- `{f}`: {MODEL_FEATURE_TEXT[f]}" for f in model.MODEL_FEATURES]
            out.append("")
        out += ["### How to respond", "", *_runbook(e.runbook), ""]
        if e.settings:
            values = ", ".join(f"`{k} = {_toml(v)}`" for k, v in e.settings.items())
            out += [f"Settings (`{e.section}` in `keytrail.toml`, defaults): {values}", ""]
        samples = _samples(e.id)
        if samples:
            out += [f"Sample events: {samples}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# --- the lake schema --------------------------------------------------------------------------


def _sql_header(name: str) -> list[str]:
    """The leading comment block of ``sql/<name>.sql`` (purpose, grain, inputs, params, output)."""
    lines = sql.load(name).splitlines()
    header = list(itertools.takewhile(lambda line: line.startswith("--"), lines))
    return [line.removeprefix("-- ").rstrip() for line in header]


def _history_section() -> list[str]:
    """One entry per history table, from the tables the registered rules declare."""
    empty = history.empty()
    out = [
        "## Detection history: `LAKE/history/<table>/event_date=YYYY-MM-DD/<table>.parquet`",
        "",
        _prose(inspect.getdoc(history) or ""),
        "",
    ]
    for table in history.TABLES:
        readers = [d.id for d in ALL_DETECTORS if table in d.history]
        schema = empty[table.name].collect().to_arrow().schema
        if table.name == "control_events":
            columns = "the rule columns of the event schema: " + ", ".join(
                f"`{name}`" for name in schema.names
            )
        else:
            columns = ", ".join(f"`{f.name}` ({_type_name(f.type)})" for f in schema)
        out += [
            f"### `{table.name}`",
            "",
            f"{table.description[0].upper()}{table.description[1:]}. Read by "
            + ", ".join(f"`{r}`" for r in readers)
            + f". Columns: {columns}.",
            "",
        ]
    return out


def render_lake_schema() -> str:
    """``docs/lake-schema.md``: every file of the lake and every column, for analysts."""
    docs = _attribute_docstrings(s)
    out = _header("analytics/lake/schema.py and sql/features_hourly.sql")
    out += [
        "# The lake, for analysts",
        "",
        "Everything keytrail knows is in the lake folder, as plain Parquet that any engine reads. "
        "This page lists every file and every column, rendered from `analytics/lake/schema.py` "
        "(the one place that names columns and their types) and `sql/features_hourly.sql`.",
        "",
        "```",
        "LAKE/events/event_date=YYYY-MM-DD/*.parquet              one row per CloudTrail event",
        "LAKE/alerts/event_date=YYYY-MM-DD/alerts.parquet         one row per alert of that day",
        "LAKE/incidents/event_date=YYYY-MM-DD/incidents.parquet   one row per incident of that day",
        "LAKE/features/hourly/event_date=YYYY-MM-DD/features.parquet   hourly (key, actor) usage",
        "LAKE/history/<table>/event_date=YYYY-MM-DD/<table>.parquet    detection history",
        "LAKE/ocsf/event_date=YYYY-MM-DD/alerts.ocsf.jsonl       the alerts as OCSF, once exported",
        "LAKE/_state/objects.parquet                              one row per log object read",
        "LAKE/quarantine/objects/*.json, records/*.jsonl          what was refused, and why",
        "LAKE/reports/YYYY-MM-DD/                                 the day's reports (Parquet, CSV,",
        "                                                         report.html, report.md)",
        "```",
        "",
        "Every table is Hive-partitioned zstd Parquet, written atomically (temporary files are "
        "hidden `.tmp-…partial` files that no reader's `*.parquet` glob picks up). Times are "
        "UTC and `event_date` is the event's own UTC date. A partition holds no zero-row file: "
        "a day without alerts or incidents has no file (`_state/scored/D.json` records that it "
        "was scored), nor has a history table's day without rows (its stamp is "
        "`_state/history/<table>/D.stamp`), and no table has files for days before the lake's "
        "first event.",
        "",
        "`event_date` lives in the folder name only, not inside the files, as Hive, Athena, "
        "Trino and Spark expect of a partition column. Read with Hive partitioning, every "
        "engine gets it from the path and agrees on the rows: DuckDB "
        "(`hive_partitioning = true`) and Polars (`hive_partitioning=True`) type it as a date; "
        'pyarrow (`partitioning="hive"`) infers a string, or a date with '
        '`partitioning=ds.partitioning(pa.schema([("event_date", pa.date32())]), '
        'flavor="hive")`. Reading the files without Hive partitioning gives no `event_date`. '
        "Files written by keytrail versions that kept the column inside the files (as a date) "
        "still read, through keytrail and through DuckDB and Polars; pyarrow's inferred string "
        "clashes with their date, so read such a lake with the typed partitioning above.",
        "",
        "DuckDB, Polars, Spark, Athena and Trino read the folders as they are:",
        "",
        "```sql",
        "-- DuckDB",
        "select actor, count(*) as calls",
        "from read_parquet('lake/events/*/*.parquet', hive_partitioning = true)",
        "where event_date = date '2026-11-14' and key_arn like '%:key/c4761df1-%'",
        "group by actor order by calls desc;",
        "```",
        "",
        "## Querying from Athena, Trino and Spark",
        "",
        "`keytrail lake ddl` prints the SQL that makes an S3 lake four tables of one database "
        "(`events`, `hourly_features`, `alerts`, `incidents`), partitioned by `event_date`, "
        "with column types derived from the schemas below (strings, booleans, integers, "
        "doubles, UTC timestamps, arrays and structs, in each engine's own words):",
        "",
        "```",
        "keytrail lake ddl --engine athena --lake s3://sec-lake/keytrail --database keytrail",
        "keytrail lake ddl --engine trino  --lake s3://sec-lake/keytrail > keytrail-trino.sql",
        "keytrail lake ddl --engine spark  --lake s3://sec-lake/keytrail > keytrail-spark.sql",
        "```",
        "",
        "- **Athena**: `CREATE EXTERNAL TABLE … PARTITIONED BY (event_date DATE) STORED AS "
        "PARQUET` with partition projection (`projection.event_date.type = 'date'`, format "
        "`yyyy-MM-dd`, range `--since` (default 2020-01-01) to `NOW`, "
        "`storage.location.template`), so new days are queryable as soon as they are written, "
        "with no `MSCK REPAIR` and no crawler. Filter on `event_date` to read only those days.",
        "- **Trino** (Hive connector): `CREATE TABLE … WITH (external_location = …, format = "
        "'PARQUET', partitioned_by = ARRAY['event_date'])`, then "
        "`CALL system.sync_partition_metadata(…, 'ADD')` per table; run that again after each "
        "nightly ingest. Timestamps are read at the connector's `hive.timestamp-precision` "
        "(milliseconds unless set to `MICROSECONDS`).",
        "- **Spark**: `CREATE TABLE … USING parquet PARTITIONED BY (event_date) LOCATION …`, "
        "then `MSCK REPAIR TABLE` per table after each ingest. Outside EMR, Hadoop's S3 "
        "connector wants `s3a://`: change the scheme in the printed `LOCATION`.",
        "",
        "The location must be a plain `s3://bucket/prefix` (no quotes, spaces, control "
        "characters, `$` or braces) and the database a lower-case name; anything else is "
        "refused, exit 2. The command reads nothing and needs no credentials. These engines read "
        "every file in a table's folder as Parquet: keep other files out of `events/`, "
        "`features/hourly/`, `alerts/` and `incidents/`. Lakes written by keytrail versions "
        "that put the OCSF export beside `alerts.parquet` have "
        "`alerts/event_date=D/alerts.ocsf.jsonl` files: move them to "
        "`ocsf/event_date=D/alerts.ocsf.jsonl` before querying the alerts table.",
        "",
        "In Python, `analytics.api` answers the common questions with the same definitions the "
        "detectors use (`api.events`, `api.hourly_usage`, `api.baseline_band`, `api.alerts`, "
        "`api.incidents`, `api.explain`); the notebooks in `notebooks/` and the daily HTML "
        "report are built on it. `api.open_lake` also opens an `s3://bucket/prefix` lake, "
        "read in place: each query fetches only the partitions and columns it needs, and "
        "nothing is written to the bucket.",
        "",
        "Values that came from CloudTrail records (user agents, error messages, JSON text, "
        "reasons built from them) are attacker-influenced: escape them wherever they are shown.",
        "",
        "## Events: `LAKE/events/event_date=YYYY-MM-DD/*.parquet`",
        "",
        _prose(docs["EVENT_SCHEMA"]),
        "",
        *_columns_table(s.EVENT_SCHEMA, EVENT_COLUMNS, "EVENT_SCHEMA"),
        "",
        "## Alerts: `LAKE/alerts/event_date=YYYY-MM-DD/alerts.parquet`",
        "",
        _prose(docs["ALERT_SCHEMA"])
        + " `LAKE/ocsf/event_date=YYYY-MM-DD/alerts.ocsf.jsonl` holds the same alerts as OCSF "
        "Detection Findings once they have been exported to a file (a folder of its own: a "
        "JSON file in the alerts table's folder would fail Athena, Trino and Spark queries).",
        "",
        *_columns_table(s.ALERT_SCHEMA, ALERT_COLUMNS, "ALERT_SCHEMA"),
        "",
        "Each `top_features` element:",
        "",
        *_columns_table(
            pa.schema(list(s.FEATURE_STRUCT)), FEATURE_STRUCT_FIELDS, "FEATURE_STRUCT", False
        ),
        "",
        f"`severity`, least to most severe: {', '.join(f'`{v}`' for v in s.SEVERITIES)}. "
        + _prose(docs["SEVERITIES"]),
        "",
        f"`observed_pattern`: {', '.join(f'`{v}`' for v in s.OBSERVED_PATTERNS)}. "
        + _prose(docs["OBSERVED_PATTERNS"]),
        "",
        "## Incidents: `LAKE/incidents/event_date=YYYY-MM-DD/incidents.parquet`",
        "",
        _prose(docs["INCIDENT_SCHEMA"])
        + " The file is written before the day's alerts file, so an alert never names an "
        "incident that is not on disk. `api.incidents` reads each incident once, as its latest "
        "day's row; `[incidents]` in keytrail.toml sets how alerts are grouped.",
        "",
        *_columns_table(s.INCIDENT_SCHEMA, INCIDENT_COLUMNS, "INCIDENT_SCHEMA"),
        "",
        "Each `timeline` element:",
        "",
        *_columns_table(
            pa.schema(list(s.TIMELINE_STRUCT)), TIMELINE_STRUCT_FIELDS, "TIMELINE_STRUCT", False
        ),
        "",
        "## Hourly features: `LAKE/features/hourly/event_date=YYYY-MM-DD/features.parquet`",
        "",
        _prose(inspect.getdoc(features) or ""),
        "",
        "From the header of `sql/features_hourly.sql`:",
        "",
        "```",
        *_sql_header("features_hourly"),
        "```",
        "",
        *_columns_table(
            features.feature_schema(), FEATURE_COLUMNS, "sql/features_hourly.sql", False
        ),
        "",
        *_history_section(),
        "## Source objects: `LAKE/_state/objects.parquet`",
        "",
        _prose(docs["OBJECT_STATE_SCHEMA"]),
        "",
        *_columns_table(s.OBJECT_STATE_SCHEMA, OBJECT_STATE_COLUMNS, "OBJECT_STATE_SCHEMA"),
        "",
        "## Quarantine: `LAKE/quarantine/`",
        "",
        "File names are hashes of the object key, so a hostile key can never escape the lake.",
        "",
        "- `objects/<hash>.json`: one refused object: `source_object`, `reason`, `size`, "
        "`etag`, `quarantined_at`.",
        "- `records/<hash>.jsonl`: one line per refused record of an object that was otherwise "
        "ingested: `source_object`, `index` (position in `Records`), `reason`, `record` (its "
        "text, truncated). For an eventID clash, `index` is null and `record` is the event as "
        "it would have been stored.",
        "",
        "What to do about them: [operations](operations.md#quarantine).",
    ]
    return "\n".join(out).rstrip("\n") + "\n"


# --- command line -----------------------------------------------------------------------------

GENERATED: dict[Path, Callable[[], str]] = {
    DETECTORS_DOC: render_detectors,
    SCHEMA_DOC: render_lake_schema,
}
"""Each generated document and the function that renders it."""


def stale(root: Path = REPO) -> list[Path]:
    """The generated documents under ``root`` whose content differs from what the code says."""
    out = []
    for relative, render in GENERATED.items():
        path = root / relative
        if not path.exists() or path.read_text(encoding="utf-8") != render():
            out.append(relative)
    return out


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated documents, or with ``--check`` only report the stale ones."""
    parser = argparse.ArgumentParser(prog="python -m analytics.docs_gen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a document is stale")
    parser.add_argument("--root", type=Path, default=REPO, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.root)
        for path in outdated:
            print(f"{path} is out of date; run {REGENERATE}", file=sys.stderr)
        return 1 if outdated else 0
    for relative, render in GENERATED.items():
        path = args.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
