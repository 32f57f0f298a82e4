"""Alerts → incidents: one attack story, one thing to triage.

A security team triages stories, not alerts. After the detectors have run for a day, its alerts
are grouped with each other and with the alerts of the days before it:

- **one actor**: alerts of the same stable actor (role, user, root; never each session) whose
  windows lie within ``window_hours`` of each other, across keys and detectors;
- **cause and consequence on one key**: a key disabled, scheduled for deletion or stripped of its
  imported material, and then used (``PendingDeletionKeyUsed``), failing
  (``FailedDecryptBurst``, failures the model saw) within ``consequence_days``; a key opened to
  outsiders (policy or grant) and then called by a new outside caller or a new actor.

Groups of two or more alerts become incidents. An alert that links to nothing stands alone
(``incident_id`` null) and is triaged by itself.

Identity is stable: an incident's ID hashes the ID of its first alert (earliest window, then
alert ID), and alerts of earlier days keep the incident ID they were given, so an incident that
goes on past midnight keeps its ID, and a rerun or a backfill of the same days gives the same
IDs. Earlier days' files are never rewritten: an alert of yesterday that today's alerts join
keeps its own (possibly null) ``incident_id`` in yesterday's file, and today's incident lists it.

Pure: takes and returns Polars frames. The work is per alert (dozens a day), not per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analytics.detect import attack
from analytics.lake import schema as s

MODEL_DETECTOR = "KMS.UnusualKeyUsage"

DESTRUCTIVE_CAUSES = frozenset(
    {"KMS.KeyDisabledOrScheduledForDeletion", "KMS.ImportedKeyMaterialChanged"}
)
"""A change that makes a key unusable: whatever fails or is refused on that key afterwards is its
consequence, not a separate story."""
DESTRUCTIVE_CONSEQUENCES = frozenset(
    {"KMS.PendingDeletionKeyUsed", "KMS.FailedDecryptBurst", MODEL_DETECTOR}
)
EXPOSING_CAUSES = frozenset({"KMS.KeyPolicyChanged", "KMS.GrantToExternalPrincipal"})
"""A change that lets new principals use a key: their first calls are its consequence."""
EXPOSING_CONSEQUENCES = frozenset(
    {"KMS.NewCrossAccountCaller", "KMS.NewActorForKey", MODEL_DETECTOR}
)

CAUSE_SLACK = dt.timedelta(hours=1)
"""A consequence may be stamped up to an hour before its cause: hour-aligned model windows and
merge windows start before the change that caused them."""

_RANK = {name: rank for rank, name in enumerate(s.SEVERITIES)}
TIMELINE_LIMIT = 200
"""Timeline entries kept per incident; the alert count says how many there were."""
WHAT_LIMIT = 300
"""Characters of an alert's reason shown as a timeline entry."""


@dataclass(frozen=True)
class IncidentSettings:
    """How alerts are grouped (``[incidents]`` in ``keytrail.toml``)."""

    window_hours: int = 24
    consequence_days: int = 30
    """Pending deletion lasts 7–30 days: callers of the key fail for that long."""

    def lookback(self) -> dt.timedelta:
        """How far back earlier days' alerts can still join today's incidents (whole days)."""
        hours = max(self.window_hours, self.consequence_days * 24)
        return dt.timedelta(days=-(-hours // 24))


@dataclass(frozen=True)
class Combination:
    """A pair of findings worse together than apart: the incident is raised one severity step."""

    first: frozenset[str]
    then: frozenset[str]
    same_key: bool
    because: str

    def holds(self, alerts: Sequence[dict[str, Any]]) -> bool:
        for cause in alerts:
            if cause[s.DETECTOR] not in self.first:
                continue
            for later in alerts:
                if later[s.DETECTOR] not in self.then or later is cause:
                    continue
                if self.same_key and later[s.KEY_ARN] != cause[s.KEY_ARN]:
                    continue
                if later[s.WINDOW_END] >= cause[s.WINDOW_START] - CAUSE_SLACK:
                    return True
        return False


COMBINATIONS: tuple[Combination, ...] = (
    Combination(
        EXPOSING_CAUSES,
        frozenset({"KMS.NewCrossAccountCaller"}),
        same_key=True,
        because="the key was opened to outsiders and a new outside caller then used it",
    ),
    Combination(
        frozenset({"KMS.KmsMonitoringDisabled"}),
        DESTRUCTIVE_CAUSES | EXPOSING_CAUSES | frozenset({"KMS.AliasRetargeted"}),
        same_key=False,
        because="CloudTrail was changed to stop recording KMS events around a change to a key",
    ),
    Combination(
        frozenset({"KMS.BulkSecretDecryption", "KMS.FailedDecryptBurst"}),
        DESTRUCTIVE_CAUSES | EXPOSING_CAUSES,
        same_key=False,
        because="credential harvesting was followed by a destructive or exposing change",
    ),
)
"""Combinations that raise an incident's severity by one step (at most critical)."""


@dataclass
class Grouping:
    """Today's incidents, and the incident of each of today's alerts (absent: stands alone)."""

    incidents: pl.DataFrame
    incident_of: dict[str, str] = field(default_factory=dict)


class _Forest:
    """Union-find over alert positions, so links found in any order give the same groups."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def empty_incidents() -> pl.DataFrame:
    frame = pl.from_arrow(s.INCIDENT_SCHEMA.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def incident_id_for(first_alert_id: str) -> str:
    """The stable ID of an incident whose first alert is ``first_alert_id``."""
    return hashlib.sha256(f"incident|{first_alert_id}".encode()).hexdigest()[:32]


def short_arn(value: str | None) -> str:
    """A name an analyst recognises: ``role/Name@account``, ``alias/x``, ``key/1234abcd``."""
    if not value:
        return "-"
    if value.startswith("arn:"):
        parts = value.split(":", 5)
        resource = parts[-1]
        if resource.startswith("key/"):
            return f"key/{resource[4:12]}"
        if parts[2] in {"iam", "sts"} and len(parts) == 6 and parts[4]:
            return f"{resource}@{parts[4]}"
        return resource
    return value


_ALERT_FIELDS = (
    s.ALERT_ID, s.DETECTOR, s.SEVERITY, s.WINDOW_START, s.WINDOW_END, s.ACCOUNT_ID, s.KEY_ARN,
    s.ACTOR, s.TITLE, s.REASON, s.EVIDENCE_COUNT, s.MITRE, s.OBSERVED_PATTERN, s.EVENT_DATE,
    s.INCIDENT_ID, s.RELATED_KEY_ARNS,
)  # fmt: skip


def _rows(alerts: pl.DataFrame) -> list[dict[str, Any]]:
    # Alerts written before a column existed read it as null.
    missing = [pl.lit(None).alias(c) for c in _ALERT_FIELDS if c not in alerts.columns]
    return list(alerts.with_columns(missing).select(_ALERT_FIELDS).iter_rows(named=True))


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row[s.WINDOW_START], row[s.ALERT_ID])


def _link_actors(rows: list[dict[str, Any]], today: set[int], forest: _Forest,
                 window: dt.timedelta, why: dict[int, set[str]]) -> None:  # fmt: skip
    """Chain each actor's alerts whose windows lie within ``window`` of the chain so far."""
    by_actor: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row[s.ACTOR]:
            by_actor[row[s.ACTOR]].append(index)
    for actor, members in by_actor.items():
        members.sort(key=lambda i: _order(rows[i]))
        reach: dt.datetime | None = None
        previous: int | None = None
        for index in members:
            start = rows[index][s.WINDOW_START]
            near = previous is not None and reach is not None and start - reach <= window
            # Earlier days' alerts are linked only through today's: their own grouping stands.
            if near and previous is not None and (index in today or previous in today):
                forest.union(previous, index)
                why[index].add(f"same actor {short_arn(actor)}")
            end = rows[index][s.WINDOW_END]
            reach = end if reach is None else max(reach, end)
            previous = index


def _link_consequences(rows: list[dict[str, Any]], today: set[int], forest: _Forest,
                       horizon: dt.timedelta, why: dict[int, set[str]]) -> None:  # fmt: skip
    """Join each alert that follows a destructive or exposing change to that change's key."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row[s.KEY_ARN]:
            by_key[row[s.KEY_ARN]].append(index)
    rules = (
        (DESTRUCTIVE_CAUSES, DESTRUCTIVE_CONSEQUENCES, "after the key was made unusable"),
        (EXPOSING_CAUSES, EXPOSING_CONSEQUENCES, "after the key was opened to new principals"),
    )
    for key, members in by_key.items():
        for causes, consequences, words in rules:
            cause_rows = [i for i in members if rows[i][s.DETECTOR] in causes]
            for cause in cause_rows:
                begins = rows[cause][s.WINDOW_START] - CAUSE_SLACK
                for index in members:
                    row = rows[index]
                    if row[s.DETECTOR] not in consequences or index == cause:
                        continue
                    if not begins <= row[s.WINDOW_START] <= begins + CAUSE_SLACK + horizon:
                        continue
                    if (
                        row[s.DETECTOR] == MODEL_DETECTOR
                        and causes is DESTRUCTIVE_CAUSES
                        and (row[s.OBSERVED_PATTERN] != "FAILURES")
                    ):
                        continue
                    if index in today or cause in today:
                        forest.union(cause, index)
                        why[index].add(f"on {short_arn(key)} {words}")


def _severity(rows: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    worst = max(_RANK[r[s.SEVERITY]] for r in rows)
    reasons = [c.because for c in COMBINATIONS if c.holds(rows)]
    if reasons and worst < len(s.SEVERITIES) - 1:
        return s.SEVERITIES[worst + 1], "; ".join(reasons)
    return s.SEVERITIES[worst], None


def _distinct(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v})


def _listed(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _title(rows: Sequence[dict[str, Any]], actors: list[str], keys: list[str]) -> str:
    lead = max(rows, key=lambda r: (_RANK[r[s.SEVERITY]], -r[s.WINDOW_START].timestamp()))
    who = _listed([short_arn(a) for a in actors], 2) if actors else "unknown actor"
    where = f" on {short_arn(keys[0])}" if len(keys) == 1 else (
        f" across {len(keys)} keys" if keys else ""
    )  # fmt: skip
    others = len({r[s.DETECTOR] for r in rows}) - 1
    more = f" (+{others} other finding{'s' if others > 1 else ''})" if others > 0 else ""
    return f"{lead[s.TITLE]}{more}: {who}{where}"


def _summary(rows: Sequence[dict[str, Any]], actors: list[str], keys: list[str],
             accounts: list[str], tactics: list[str], raised: str | None) -> str:  # fmt: skip
    first, last = rows[0][s.WINDOW_START], max(r[s.WINDOW_END] for r in rows)
    detectors = _distinct(r[s.DETECTOR] for r in rows)
    parts = [
        f"{len(rows)} alerts from {len(detectors)} detector{'s' if len(detectors) > 1 else ''}"
        f" between {first:%Y-%m-%d %H:%M} and {last:%Y-%m-%d %H:%M} UTC",
        f"actors: {_listed([short_arn(a) for a in actors])}" if actors else "",
        f"keys: {_listed([short_arn(k) for k in keys])}" if keys else "",
        f"accounts: {_listed(accounts)}" if accounts else "",
        f"tactics: {' → '.join(tactics)}" if tactics else "",
    ]
    text = "; ".join(p for p in parts if p) + "."
    text += f" It began with: {_clip(rows[0][s.REASON])}"
    if raised:
        text += f" Severity raised: {raised}."
    return text


def _clip(text: str | None, limit: int = WHAT_LIMIT) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _account_of(arn: str | None) -> str | None:
    if arn and arn.startswith("arn:"):
        parts = arn.split(":", 5)
        if len(parts) > 4 and parts[4].isdigit():
            return parts[4]
    return None


def _incident_row(rows: list[dict[str, Any]], incident_id: str, day: dt.date,
                  links: set[str]) -> dict[str, Any]:  # fmt: skip
    rows = sorted(rows, key=_order)
    actors = _distinct(r[s.ACTOR] for r in rows)
    # A sweep across keys has no key_arn of its own; its keys are still what the incident touched.
    keys = _distinct(k for r in rows for k in [r[s.KEY_ARN], *(r[s.RELATED_KEY_ARNS] or [])])
    accounts = _distinct(
        [r[s.ACCOUNT_ID] for r in rows]
        + [_account_of(a) for a in actors]
        + [_account_of(k) for k in keys]
    )
    techniques = _distinct(t for r in rows for t in (r[s.MITRE] or []))
    tactics = attack.tactics_in_order(techniques)
    severity, raised = _severity(rows)
    return {
        s.INCIDENT_ID: incident_id,
        s.EVENT_DATE: day,
        s.SEVERITY: severity,
        s.TITLE: _title(rows, actors, keys),
        s.SUMMARY: _summary(rows, actors, keys, accounts, tactics, raised),
        s.SEVERITY_RAISED_BECAUSE: raised,
        s.FIRST_SEEN: rows[0][s.WINDOW_START],
        s.LAST_SEEN: max(r[s.WINDOW_END] for r in rows),
        s.ACTORS: actors,
        s.KEY_ARNS: keys,
        s.ACCOUNT_IDS: accounts,
        s.DETECTORS: _distinct(r[s.DETECTOR] for r in rows),
        s.TACTICS: tactics,
        s.TECHNIQUES: techniques,
        s.LINKS: sorted(links),
        s.ALERT_COUNT: len(rows),
        s.ALERT_IDS: [r[s.ALERT_ID] for r in rows],
        s.TIMELINE: [
            {
                "time": r[s.WINDOW_START],
                "what": _clip(r[s.REASON]),
                "detector": r[s.DETECTOR],
                "severity": r[s.SEVERITY],
                "alert_id": r[s.ALERT_ID],
                "evidence_count": r[s.EVIDENCE_COUNT],
            }
            for r in rows[:TIMELINE_LIMIT]
        ],
    }


def group(
    alerts: pl.DataFrame,
    earlier: pl.DataFrame,
    day: dt.date,
    settings: IncidentSettings | None = None,
) -> Grouping:
    """Group ``day``'s alerts (and earlier days' alerts they continue) into incidents.

    ``earlier`` holds alerts of the days before ``day`` within :meth:`IncidentSettings.lookback`,
    with the ``incident_id`` they were given. Suppressed alerts are left out: a governed
    exception is not part of anyone's story.
    """
    settings = settings or IncidentSettings()
    live = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null()) if alerts.height else alerts
    before = (
        earlier.filter(pl.col(s.SUPPRESSED_BY).is_null() & (pl.col(s.EVENT_DATE) < day))
        if earlier.height
        else earlier
    )
    today_rows = _rows(live)
    if not today_rows:
        return Grouping(empty_incidents())
    rows = today_rows + (_rows(before) if before.height else [])
    today = set(range(len(today_rows)))
    forest = _Forest(len(rows))
    why: dict[int, set[str]] = defaultdict(set)
    # Earlier alerts that were already one incident stay one.
    first_of: dict[str, int] = {}
    for index in range(len(today_rows), len(rows)):
        incident = rows[index][s.INCIDENT_ID]
        if incident:
            forest.union(first_of.setdefault(incident, index), index)
    _link_actors(rows, today, forest, dt.timedelta(hours=settings.window_hours), why)
    _link_consequences(rows, today, forest, dt.timedelta(days=settings.consequence_days), why)

    groups: dict[int, list[int]] = defaultdict(list)
    for index in range(len(rows)):
        groups[forest.find(index)].append(index)
    records = []
    incident_of: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2 or not any(i in today for i in members):
            continue
        member_rows = [rows[i] for i in members]
        inherited = sorted(
            (rows[i] for i in members if i not in today and rows[i][s.INCIDENT_ID]),
            key=_order,
        )
        first = min(member_rows, key=_order)
        incident_id = inherited[0][s.INCIDENT_ID] if inherited else incident_id_for(
            first[s.ALERT_ID]
        )  # fmt: skip
        links = {text for i in members for text in why[i]}
        records.append(_incident_row(member_rows, incident_id, day, links))
        for i in members:
            if i in today:
                incident_of[rows[i][s.ALERT_ID]] = incident_id
    if not records:
        return Grouping(empty_incidents(), {})
    frame = pl.from_arrow(
        pl.DataFrame(records).to_arrow().select(list(s.INCIDENT_COLUMNS)).cast(s.INCIDENT_SCHEMA)
    )
    assert isinstance(frame, pl.DataFrame)
    order = pl.col(s.SEVERITY).replace_strict(_RANK, return_dtype=pl.Int8)
    frame = frame.sort(order, s.FIRST_SEEN, s.INCIDENT_ID, descending=[True, False, False])
    return Grouping(frame, incident_of)


def label_alerts(alerts: pl.DataFrame, grouping: Grouping) -> pl.DataFrame:
    """``alerts`` with ``incident_id`` set from ``grouping`` (null where an alert stands alone)."""
    mapping = pl.DataFrame(
        {
            s.ALERT_ID: list(grouping.incident_of),
            "_incident": list(grouping.incident_of.values()),
        },
        schema={s.ALERT_ID: pl.String, "_incident": pl.String},
    )
    base = alerts.drop(s.INCIDENT_ID) if s.INCIDENT_ID in alerts.columns else alerts
    return (
        base.join(mapping, on=s.ALERT_ID, how="left", maintain_order="left")
        .rename({"_incident": s.INCIDENT_ID})
        .select(s.ALERT_COLUMNS)
    )


def triage_count(incidents: pl.DataFrame, alerts: pl.DataFrame) -> int:
    """Things an analyst must look at: incidents, plus live alerts outside any incident."""
    alone = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null() & pl.col(s.INCIDENT_ID).is_null())
    return incidents.height + alone.height
