"""The plan: everything decided before any record is drawn, shipped once to each worker.

A day shard needs the organisation, the standing workloads, its volume budget, and what the
labelled scenarios change on that day (keys that start failing, a workload that doubles, a trail
that stops logging KMS). Deciding all of this up front, in the parent, is what lets days be
generated independently and in any order while the tree stays byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from analytics.generator.events import Record
from analytics.generator.organisation import Key, Organisation, Role, User
from analytics.generator.rhythm import hour_shares, is_office_hour
from analytics.generator.workloads import Workload

Emitted = tuple[int, Record, str | None]
"""A record with its Unix second and the id of the scenario it belongs to (if any)."""

CONSEQUENCE = "#consequence"
"""Tag suffix of records a scenario causes but its actor does not make: the legitimate callers
of a key the attack disabled or scheduled for deletion, failing. Labelled with the scenario (an
incident is the cause with its consequences) and listed apart as ``consequence_event_ids``."""


def consequence_of(scenario_id: str) -> str:
    return scenario_id + CONSEQUENCE


@dataclass(frozen=True)
class KeyOutage:
    """From ``start_epoch`` cryptographic calls on the key fail with this error; the failing
    calls are consequences of ``scenario_id`` (tagged with :func:`consequence_of`)."""

    key_arn: str
    start_epoch: int
    error_code: str
    message: str
    scenario_id: str | None


@dataclass(frozen=True)
class Boost:
    """A workload's volume multiplied for some hours of one day (a load test)."""

    wid: int
    day: int
    first_hour: int
    end_hour: int
    factor: float


@dataclass(frozen=True)
class WorkloadTag:
    """Records of a workload in a day/hour range belong to a (decoy) scenario."""

    wid: int
    scenario_id: str
    first_day: int
    last_day: int
    first_hour: int = 0
    end_hour: int = 24


@dataclass(frozen=True)
class Blackout:
    """From ``start_epoch`` the trail stops logging KMS events of these accounts."""

    account_ids: tuple[str, ...]
    start_epoch: int


@dataclass(frozen=True)
class Rotation:
    """An automatic yearly rotation of a key falling inside the window."""

    key: Key
    day: int
    second: int
    scenario_id: str | None


@dataclass(frozen=True)
class ScenarioSpec:
    """One labelled scenario: what happens, to which key, by whom, when."""

    sid: str
    kind: str
    malicious: bool
    day: int
    second: int  # start, seconds after midnight UTC
    description: str
    actor: Role | User | str | None  # str: "root:<acct>" or an outside role ARN
    keys: tuple[Key, ...] = ()
    count: int = 0
    workload: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    seed: int
    start: date
    days: int
    events_per_day: int
    org_id: str | None
    corrupt: bool
    org: Organisation
    workloads: tuple[Workload, ...]
    budgets: tuple[int, ...]
    scenarios: tuple[ScenarioSpec, ...] = ()
    outages: tuple[KeyOutage, ...] = ()
    boosts: tuple[Boost, ...] = ()
    tags: tuple[WorkloadTag, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    rotations: tuple[Rotation, ...] = ()
    batch_days: tuple[int, ...] = ()
    corrupt_day: int = 0  # day whose files get broken records (with --corrupt)
    hostile_day: int = 0  # day whose records get hostile strings (always)

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def workload(self, wid: int) -> Workload:
        return self.workloads[wid]


def active_factor(wl: Workload, day: date, day_index: int, hour: int) -> float:
    """How much of its weight a workload claims in this hour (0 when it does not run)."""
    if day_index < wl.active_from_day:
        return 0.0
    if wl.schedule == "office" and not is_office_hour(day, hour):
        return 0.0
    if wl.schedule == "nightly" and hour not in (1, 2):
        return 0.0
    if wl.schedule == "monthly":
        return 0.0  # fixed-size runs, outside the shared budget
    if wl.ramp_days:
        return min(1.0, (day_index - wl.active_from_day + 1) / wl.ramp_days)
    return 1.0


def weight_matrix(workloads: tuple[Workload, ...], day: date, day_index: int) -> np.ndarray:
    """Workloads × 24 hours of effective weights for one day."""
    return np.array(
        [[wl.weight * active_factor(wl, day, day_index, h) for h in range(24)] for wl in workloads]
    )


def expected_hourly(plan: Plan, wid: int, day_index: int, hour: int) -> float:
    """Expected records of one workload in one hour of a day (for sizing bursts)."""
    day = plan.date_of(day_index)
    weights = weight_matrix(plan.workloads, day, day_index)[:, hour]
    total = weights.sum()
    if total <= 0:
        return 0.0
    return float(plan.budgets[day_index] * hour_shares(day)[hour] * weights[wid] / total)
