"""The daily report set: build every report of a day from its inputs, and write them.

``build`` is pure — frames in, :class:`DailyReport` out — and deterministic: rows are sorted,
and the only clock in the content is ``generated_at``, which callers (and the golden tests) pin.
``write`` puts the tables (Parquet and CSV), ``report.html``, ``report.md`` and ``summary.json``
under ``LAKE/reports/YYYY-MM-DD/``, each file atomically, the human-readable documents last so
a reader never finds a report that points at tables not yet written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analytics.adapters.kms_inventory import KeySnapshot
from analytics.adapters.lake import LocalLake
from analytics.api import incident_records
from analytics.detect import bands as band_data
from analytics.detect.baselines import DEFAULT_WINDOW_DAYS
from analytics.detect.incidents import empty_incidents
from analytics.ingest.identity import KMS_SOURCE
from analytics.lake import schema as s
from analytics.publish.export.bounds import MAX_EVIDENCE_EVENTS
from analytics.publish.reports import csv_safe, inventory, key_usage, policy_audit, rotation
from analytics.publish.reports import schemas as r
from analytics.publish.reports import text as t
from analytics.publish.reports.inputs import ReportInputs
from analytics.publish.reports.keyfacts import traits_from, walk
from analytics.publish.reports.tables import to_arrow

MAX_CHARTS = 12
MAX_EVIDENCE_PER_ALERT = MAX_EVIDENCE_EVENTS  # the same few in the report as in an export

EVIDENCE_COLUMNS = (s.ALERT_ID, s.EVENT_ID, s.EVENT_TIME, s.EVENT_NAME, s.ACTOR, s.PRINCIPAL_ARN,
                    "source", s.USER_AGENT, s.ERROR_CODE)  # fmt: skip

_SEVERITY_RANK = {name: rank for rank, name in enumerate(s.SEVERITIES)}

MARKED_EVENTS = (
    "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "EnableKey", "DeleteKey",
    "PutKeyPolicy", "DisableKeyRotation", "ImportKeyMaterial", "DeleteImportedKeyMaterial",
    "UpdateAlias",
)  # fmt: skip
"""Control-plane events marked on a key's hourly chart (with grants to outside principals): a
spike of use means little next to the moment someone disabled, deleted or reopened the key."""

MARKER_COLUMNS = (s.KEY_ARN, s.EVENT_TIME, s.EVENT_NAME, s.ACTOR, s.EVENT_ID)
_MARKER_SCHEMA: dict[str, pl.DataType] = {
    s.KEY_ARN: pl.String(), s.EVENT_TIME: pl.Datetime("us", "UTC"), s.EVENT_NAME: pl.String(),
    s.ACTOR: pl.String(), s.EVENT_ID: pl.String(),
}  # fmt: skip

FINDINGS: dict[str, str] = {
    "open_to_anyone": "Keys open to anyone",
    "open_to_outside_accounts": "Keys open to outside accounts",
    "pending_deletion": "Keys pending deletion",
}
"""The key facts that get a card of their own at the top of the report, naming the keys."""


@dataclass(frozen=True)
class DailyReport:
    """Every report of one day, ready to render or write."""

    day: dt.date
    generated_at: dt.datetime
    lake_first_day: dt.date | None
    headline: dict[str, int]
    alerts: pl.DataFrame
    evidence: pl.DataFrame
    bands: pl.DataFrame
    key_usage: pl.DataFrame
    actor_usage: pl.DataFrame
    rotation: pl.DataFrame
    policy_changes: pl.DataFrame
    keys: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    incidents: pl.DataFrame = field(default_factory=empty_incidents)
    """The day's incidents, most severe first: what the reports open with."""
    warming_up: list[dict[str, Any]] = field(default_factory=list)
    """Detectors that could not run or ran on partial history, with the backfill that fills it."""
    findings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per :data:`FINDINGS` kind, the keys it names: ``key_arn``, ``label`` and ``detail``."""
    markers: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_MARKER_SCHEMA))
    """The day's control-plane events on the charted keys (:data:`MARKED_EVENTS`)."""

    @property
    def aliases(self) -> dict[str, list[str]]:
        """Aliases by key ARN, as the inventory and the day's usage know them."""
        known: dict[str, list[str]] = {}
        for frame in (self.key_usage, self.keys):
            for key, names in frame.select(s.KEY_ARN, r.ALIASES).iter_rows():
                if names:
                    known[key] = list(names)
        return known

    def alerted_hours(self, key: str) -> set[int]:
        """Hours of the day inside the window of an active alert on ``key``: the only hours a
        chart paints red (a bar above the usual range with no alert is a blip, not a finding)."""
        hours: set[int] = set()
        alerts = self.active_alerts.filter(pl.col(s.KEY_ARN) == key)
        for start, end in alerts.select(s.WINDOW_START, s.WINDOW_END).iter_rows():
            if start is None:
                continue
            # The window's end is exclusive: an alert of 13:00–14:00 is the 13:00 hour alone.
            last_moment = end - dt.timedelta(microseconds=1) if end and end > start else start
            if not start.date() <= self.day <= last_moment.date():
                continue
            first = start.hour if start.date() == self.day else 0
            last = last_moment.hour if last_moment.date() == self.day else 23
            hours.update(range(first, last + 1))
        return hours

    def named_keys(self) -> list[str]:
        """Every key the report's tables name, by label: the rows of the key legend."""
        keys: dict[str, None] = {}
        for frame in (self.keys, self.key_usage, self.active_alerts, self.policy_changes):
            keys.update(dict.fromkeys(k for k in frame.get_column(s.KEY_ARN) if k is not None))
        return sorted(keys, key=lambda k: (self.label(k), k))

    def label(self, key: Any) -> str:
        """The display label of ``key`` (:func:`analytics.publish.reports.text.key_label`)."""
        return t.key_label(key, self.aliases.get(key) if isinstance(key, str) else None)

    def tables(self) -> dict[str, pl.DataFrame]:
        """Report tables by file stem, in :data:`~analytics.publish.reports.schemas.REPORT_TABLES`
        order."""
        return {
            "key_usage": self.key_usage,
            "key_usage_by_actor": self.actor_usage,
            "rotation": self.rotation,
            "policy_changes": self.policy_changes,
            "keys": self.keys,
        }

    @property
    def active_alerts(self) -> pl.DataFrame:
        """Alerts not suppressed, most severe first."""
        return self.alerts.filter(pl.col(s.SUPPRESSED_BY).is_null())

    @property
    def lone_alerts(self) -> pl.DataFrame:
        """Active alerts outside any incident: each is triaged by itself."""
        return self.active_alerts.filter(pl.col(s.INCIDENT_ID).is_null())

    def alerts_of(self, incident_id: str) -> pl.DataFrame:
        """The day's active alerts that belong to ``incident_id``, most severe first."""
        return self.active_alerts.filter(pl.col(s.INCIDENT_ID) == incident_id)

    def summary(self) -> dict[str, Any]:
        """The machine-readable digest printed by ``keytrail report --json``."""
        active = self.active_alerts
        return {
            "date": self.day.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "lake_first_day": self.lake_first_day.isoformat() if self.lake_first_day else None,
            **self.headline,
            "alerts_by_severity": {
                sev: active.filter(pl.col(s.SEVERITY) == sev).height for sev in s.SEVERITIES
            },
            "incidents_by_severity": {
                sev: self.incidents.filter(pl.col(s.SEVERITY) == sev).height for sev in s.SEVERITIES
            },
            "incidents": incident_records(self.incidents),
            "warming_up": list(self.warming_up),
            "rotation_by_status": {
                status: self.rotation.filter(pl.col(r.ROTATION_STATUS) == status).height
                for status in r.ROTATION_STATUSES
            },
            "key_findings": {kind: list(keys) for kind, keys in self.findings.items()},
            "notes": list(self.notes),
        }


def _sorted_alerts(alerts: pl.DataFrame) -> pl.DataFrame:
    if alerts.is_empty():
        return alerts
    rank = pl.col(s.SEVERITY).replace_strict(_SEVERITY_RANK, default=-1, return_dtype=pl.Int8)
    return alerts.sort(
        [pl.col(s.SUPPRESSED_BY).is_not_null(), rank, s.WINDOW_START, s.ALERT_ID],
        descending=[False, True, False, False],
    )


def evidence_of(alerts: pl.DataFrame, day_events: pl.DataFrame,
                per_alert: int = MAX_EVIDENCE_PER_ALERT) -> pl.DataFrame:  # fmt: skip
    """The first ``per_alert`` evidence events of each active alert that the day holds."""
    schema = {s.ALERT_ID: pl.String, s.EVENT_ID: pl.String}
    active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null())
    if active.is_empty():
        wanted = pl.DataFrame(schema=schema)
    else:
        wanted = (
            active.select(s.ALERT_ID, pl.col(s.EVIDENCE_EVENT_IDS).list.head(per_alert))
            .explode(s.EVIDENCE_EVENT_IDS)
            .drop_nulls(s.EVIDENCE_EVENT_IDS)
            .rename({s.EVIDENCE_EVENT_IDS: s.EVENT_ID})
        )
    events = day_events.select(
        s.EVENT_ID, s.EVENT_TIME, s.EVENT_NAME, s.ACTOR, s.PRINCIPAL_ARN,
        pl.coalesce(s.SOURCE_IP, s.SOURCE_SERVICE).alias("source"), s.USER_AGENT, s.ERROR_CODE,
    ).unique(s.EVENT_ID, keep="first")  # fmt: skip
    return (
        wanted.join(events, on=s.EVENT_ID, how="inner")
        .select(EVIDENCE_COLUMNS)
        .sort(s.ALERT_ID, s.EVENT_TIME, s.EVENT_ID)
    )


def _alerted_keys(alerts: pl.DataFrame) -> list[str]:
    active = _sorted_alerts(alerts).filter(
        pl.col(s.SUPPRESSED_BY).is_null() & pl.col(s.KEY_ARN).is_not_null()
    )
    return list(dict.fromkeys(active.get_column(s.KEY_ARN).to_list()))[:MAX_CHARTS]


def key_findings(keys: pl.DataFrame) -> dict[str, list[dict[str, str]]]:
    """The keys each headline finding names, from the inventory: a key policy that lets anyone
    (``*``) in, a policy or an active grant that names an account outside the organisation, and
    a key scheduled for deletion and not cancelled since."""
    found: dict[str, list[dict[str, str]]] = {kind: [] for kind in FINDINGS}
    for k in keys.iter_rows(named=True):
        arn = k[s.KEY_ARN]

        def add(kind: str, detail: str, key: dict[str, Any] = k, arn: str = arn) -> None:
            label = t.key_label(arn, key[r.ALIASES])
            found[kind].append({"key_arn": arn, "label": label, "detail": detail})

        if k["policy_public_actions"]:
            add("open_to_anyone", "anyone (*) may " + t.listed(k["policy_public_actions"], 4))
        outside = []
        if k["policy_outside_accounts"]:
            outside.append("policy names " + t.listed(k["policy_outside_accounts"], 4))
        if k["outside_grantees"]:
            outside.append("granted to " + t.listed(k["outside_grantees"], 3))
        if outside:
            add("open_to_outside_accounts", "; ".join(outside))
        if k[r.PENDING_DELETION]:
            add("pending_deletion", "deletion on " + t.when(k[r.DELETION_DATE]))
    return found


def _markers(inputs: ReportInputs, keys: Sequence[str], changes: pl.DataFrame) -> pl.DataFrame:
    """The day's successful control-plane events on ``keys``, and grants made to principals
    outside the organisation, in time order."""
    outside_grants = (
        changes.filter(
            (pl.col("change_kind") == r.CHANGE_GRANT) & pl.col("grantee_outside").fill_null(False)
        )
        .get_column(s.EVENT_ID)
        .to_list()
    )
    events = inputs.management_events
    return (
        events.filter(
            (pl.col(s.EVENT_DATE) == inputs.day)
            & pl.col(s.KEY_ARN).is_in(list(keys))
            & (pl.col(s.ERROR_CODE).is_null() | (pl.col(s.ERROR_CODE) == ""))
            & (pl.col(s.EVENT_NAME).is_in(MARKED_EVENTS) | pl.col(s.EVENT_ID).is_in(outside_grants))
        )
        .select(MARKER_COLUMNS)
        .unique(s.EVENT_ID, keep="first")
        .sort(s.KEY_ARN, s.EVENT_TIME, s.EVENT_ID)
    )


def build(
    inputs: ReportInputs,
    generated_at: dt.datetime,
    snapshots: Sequence[KeySnapshot] = (),
    top_actors: int = key_usage.DEFAULT_TOP_ACTORS,
    window_days: int = DEFAULT_WINDOW_DAYS,
    notes: Sequence[str] = (),
) -> DailyReport:
    """Every report of ``inputs.day`` (pure: no lake access, no clock)."""
    day = inputs.day
    history = walk(inputs.management_events, day, traits_from(inputs.key_activity))
    alerts = _sorted_alerts(inputs.alerts)
    usage = key_usage.by_key(inputs.day_events, day, inputs.prior_pairs, alerts,
                             history.aliases, top_actors)  # fmt: skip
    actors = key_usage.by_actor(inputs.day_events, day, inputs.prior_pairs)
    rotation_rows = rotation.build(history, day, snapshots)
    changes = policy_audit.build(history, inputs.org_accounts)
    keys = inventory.build(history, rotation_rows, day, usage, alerts, inputs.org_accounts,
                           snapshots)  # fmt: skip
    charted = _alerted_keys(alerts)
    charts = band_data.build(inputs.hourly_features, day, charted, window_days)
    findings = key_findings(keys)
    active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null())
    kms = inputs.day_events.filter(pl.col(s.EVENT_SOURCE) == KMS_SOURCE)
    failed = kms.filter(pl.col(s.ERROR_CODE).is_not_null() & (pl.col(s.ERROR_CODE) != ""))
    succeeded_changes = changes.filter(pl.col("succeeded"))
    headline = {
        "kms_calls": kms.height,
        "failed_calls": failed.height,
        "keys_used": usage.height,
        "actors": actors.height,
        "new_key_actor_pairs": int(usage.get_column("new_actors").list.len().sum() or 0),
        "alerts": active.height,
        "incident_count": inputs.incidents.height,
        "alerts_outside_incidents": active.filter(pl.col(s.INCIDENT_ID).is_null()).height,
        "suppressed_alerts": alerts.height - active.height,
        "policy_changes": succeeded_changes.filter(pl.col("change_kind") == r.CHANGE_POLICY).height,
        "grant_changes": succeeded_changes.filter(pl.col("change_kind") == r.CHANGE_GRANT).height,
        "failed_changes": changes.height - succeeded_changes.height,
        "keys_in_inventory": keys.height,
        "rotation_overdue": rotation_rows.filter(pl.col(r.ROTATION_STATUS) == "OVERDUE").height,
        "rotation_disabled": rotation_rows.filter(pl.col(r.ROTATION_STATUS) == "DISABLED").height,
        "keys_pending_deletion": keys.filter(pl.col(r.PENDING_DELETION)).height,
        "keys_open_to_anyone": len(findings["open_to_anyone"]),
        "keys_open_to_outside_accounts": len(findings["open_to_outside_accounts"]),
        "event_id_clashes": inputs.event_id_clashes,
    }
    return DailyReport(
        day=day,
        generated_at=generated_at,
        lake_first_day=inputs.lake_first_day,
        headline=headline,
        alerts=alerts,
        evidence=evidence_of(alerts, inputs.day_events),
        bands=charts,
        key_usage=usage,
        actor_usage=actors,
        rotation=rotation_rows,
        policy_changes=changes,
        keys=keys,
        notes=list(notes),
        incidents=inputs.incidents,
        warming_up=list(inputs.warming_up),
        findings=findings,
        markers=_markers(inputs, charted, changes),
    )


def report_dir(lake: LocalLake, day: dt.date) -> Path:
    """The day's report folder under ``lake.root`` (for an S3 lake worked on in place, where
    it would be in this machine's cache; :meth:`LakeFS.shown` names it in the bucket)."""
    return lake.root / report_key(day)


def report_key(day: dt.date) -> str:
    return f"reports/{day.isoformat()}"


def write(lake: LocalLake, report: DailyReport) -> dict[str, Path]:
    """Write every file of ``report`` through the lake's store; returns them by name, as paths
    under ``lake.root`` (see :func:`report_dir`). The HTML report comes last: once it is there,
    every file it links to is."""
    from analytics.publish.reports import html, markdown

    folder = report_key(report.day)
    written: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        lake.store.write_bytes(f"{folder}/{name}", data)
        written[name] = lake.root / folder / name

    for stem, frame in report.tables().items():
        schema = r.REPORT_TABLES[stem]
        lake.store.write_parquet(f"{folder}/{stem}.parquet", to_arrow(frame, schema))
        written[f"{stem}.parquet"] = lake.root / folder / f"{stem}.parquet"
        put(f"{stem}.csv", csv_safe.to_csv(frame).encode("utf-8"))
    put("summary.json", (json.dumps(report.summary(), indent=2, sort_keys=False) + "\n").encode())
    for name, text in (
        ("report.md", markdown.render(report)),
        ("report.html", html.render(report)),
    ):
        put(name, text.encode("utf-8"))
    return dict(sorted(written.items()))
