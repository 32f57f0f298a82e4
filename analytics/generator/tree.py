"""``generate_tree``: plan once, generate days in parallel, then digests, bad objects, labels.

Days are independent shards: each worker gets the whole plan once (pool initializer) and a day
index, seeds its generators from (seed, day), and writes that day's log files itself. The
parent only does what needs every day's output: the hourly digest chains, the bad objects and
``labels.json``. Because no shard depends on scheduling, any number of workers produces the
same bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import orjson

from analytics.generator.corruption import (
    corrupt_records,
    inject_hostile_strings,
    write_bad_objects,
)
from analytics.generator.events import KMS
from analytics.generator.identities import label_actor
from analytics.generator.organisation import build_organisation, trail_name
from analytics.generator.plan import CONSEQUENCE, Emitted, Plan, consequence_of
from analytics.generator.randomness import derive_seed, hex_string, np_rng_for, rng_for
from analytics.generator.rhythm import daily_budgets, day_epoch, iso_from_epoch
from analytics.generator.scenario_records import emit_scenarios
from analytics.generator.scenarios import (
    MIN_DAYS_FOR_SCENARIOS,
    add_scenarios,
    monthly_batch_days,
    scenario_days,
)
from analytics.generator.traffic import DayTraffic
from analytics.generator.workloads import build_workloads, monthly_batch_workload, rampup_workload
from analytics.generator.writer import (
    DigestChain,
    LogFile,
    TreeWriter,
    plan_delivery,
    write_digest_chain,
    write_log_file,
)

LABELS_FILE = "labels.json"
MIN_BENIGN_SHARE = 0.6
_ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")


@dataclass(frozen=True)
class GenerateSummary:
    """What ``generate_tree`` wrote."""

    out: Path
    files_written: int  # CloudTrail log files (good ones, not the bad objects)
    digest_files: int
    events_written: int  # records in those log files
    bytes_written: int  # everything under ``out``, labels included
    labels_path: Path
    seconds: float
    corrupt_objects: int = 0
    scenarios: int = 0
    scenarios_missing: str | None = None  # why no scenarios were planted (see below)


def scenarios_missing(days: int) -> str | None:
    """Why a tree of ``days`` days carries no labelled scenarios, or None when it does: the
    scenarios need a baseline of ordinary days before them, and a short tree has no room."""
    if days >= MIN_DAYS_FOR_SCENARIOS:
        return None
    return (
        f"--days {days} is under {MIN_DAYS_FOR_SCENARIOS}, the minimum for the labelled "
        f"scenarios: no attacks or decoys were planted, so keytrail evaluate has nothing to score"
    )


@dataclass(frozen=True)
class _DayResult:
    day: int
    files: tuple[LogFile, ...]
    events: int
    bytes_written: int
    fragments: dict[str, tuple[list[str], int, int]] = field(default_factory=dict)
    affected: dict[str, set[str]] = field(default_factory=dict)
    bad_records: tuple[dict[str, Any], ...] = ()
    hostile_records: tuple[dict[str, Any], ...] = ()


def build_plan(
    *,
    seed: int,
    start: date,
    days: int,
    events_per_day: int,
    org_id: str | None,
    corrupt: bool,
) -> Plan:
    """Everything decided before generation: organisation, workloads, budgets, scenarios."""
    org = build_organisation(seed)
    standing = build_workloads(org, trail_name(org_id))
    avail = scenario_days(days)
    rampup_from = avail[0] if avail else days  # no labelled scenarios: the new service never starts
    run_records = min(3000, max(150, round(0.03 * events_per_day)))
    workloads = (
        *standing,
        rampup_workload(org, len(standing), rampup_from, max(1, days - rampup_from)),
        monthly_batch_workload(org, len(standing) + 1, run_records),
    )
    plan = Plan(
        seed=seed,
        start=start,
        days=days,
        events_per_day=events_per_day,
        org_id=org_id,
        corrupt=corrupt,
        org=org,
        workloads=workloads,
        budgets=tuple(daily_budgets(seed, start, days, events_per_day)),
        batch_days=monthly_batch_days(start, days, seed),
        corrupt_day=min(2, days - 1),
        hostile_day=min(1, days - 1),
    )
    return add_scenarios(plan)


def _apply_blackouts(plan: Plan, emitted: list[Emitted]) -> list[Emitted]:
    """Drop KMS events a trail would no longer record after its selectors excluded KMS."""
    if not plan.blackouts:
        return emitted
    kept = []
    for item in emitted:
        epoch, rec, _ = item
        if rec["eventSource"] == KMS and any(
            epoch >= b.start_epoch and rec["recipientAccountId"] in b.account_ids
            for b in plan.blackouts
        ):
            continue
        kept.append(item)
    return kept


def _fragments(emitted: list[Emitted]) -> dict[str, tuple[list[str], int, int]]:
    out: dict[str, tuple[list[str], int, int]] = {}
    for epoch, rec, tag in sorted((e for e in emitted if e[2] is not None), key=lambda e: e[0]):
        assert tag is not None
        ids, first, last = out.get(tag, ([], epoch, epoch))
        ids.append(rec["eventID"])
        out[tag] = (ids, min(first, epoch), max(last, epoch))
    return out


def _affected(emitted: list[Emitted]) -> dict[str, set[str]]:
    """Per consequence tag, the actors whose calls a scenario made fail."""
    out: dict[str, set[str]] = {}
    for _, rec, tag in emitted:
        if tag is not None and tag.endswith(CONSEQUENCE):
            out.setdefault(tag, set()).add(label_actor(rec["userIdentity"]))
    return out


def generate_day(plan: Plan, out: Path, day: int) -> _DayResult:
    """Generate and write one day's log files (runs in a worker process)."""
    traffic = DayTraffic(
        plan, day, rng_for(plan.seed, "day", day), np_rng_for(plan.seed, "day", day)
    )
    emit_scenarios(traffic)
    fixed = len(traffic.out)
    if day in plan.batch_days:
        fixed += sum(wl.run_records for wl in plan.workloads if wl.schedule == "monthly")
    # scenarios replace part of a day's traffic, but an attack never silences the organisation
    benign = max(plan.budgets[day] - fixed, round(MIN_BENIGN_SHARE * plan.budgets[day]))
    emitted = _apply_blackouts(plan, traffic.emit(benign))
    fragments = _fragments(emitted)
    protected = {rec["eventID"] for _, rec, tag in emitted if tag is not None}
    pending = plan_delivery(emitted, plan.org_id, rng_for(plan.seed, "deliver", day))
    hostile: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    if day == plan.hostile_day:
        hostile = inject_hostile_strings(pending, protected, rng_for(plan.seed, "hostile", day))
    if plan.corrupt and day == plan.corrupt_day:
        bad = corrupt_records(pending, protected, rng_for(plan.seed, "bad-records", day))
    writer = TreeWriter(out)
    files = tuple(write_log_file(writer, p) for p in pending)
    return _DayResult(
        day=day,
        files=files,
        events=sum(f.records for f in files),
        bytes_written=writer.bytes_written,
        fragments=fragments,
        affected=_affected(emitted),
        bad_records=tuple(bad),
        hostile_records=tuple(hostile),
    )


# --- worker plumbing --------------------------------------------------------------------------

_worker_plan: Plan | None = None
_worker_out: Path | None = None


def _init_worker(plan: Plan, out: Path) -> None:
    global _worker_plan, _worker_out  # set once per worker process
    _worker_plan, _worker_out = plan, out


def _worker_day(day: int) -> _DayResult:
    assert _worker_plan is not None
    assert _worker_out is not None
    return generate_day(_worker_plan, _worker_out, day)


@contextmanager
def _worker_pool(plan: Plan, out: Path, workers: int) -> Iterator[Pool | None]:
    """A spawn pool holding the plan (None when running in-process)."""
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(plan, out)) as pool:
        yield pool


def _run_days(plan: Plan, out: Path, pool: Pool | None) -> Iterator[_DayResult]:
    if pool is None:
        for day in range(plan.days):
            yield generate_day(plan, out, day)
        return
    # largest days first keeps every core busy to the end
    order = sorted(range(plan.days), key=lambda d: -plan.budgets[d])
    yield from pool.imap_unordered(_worker_day, order, chunksize=1)


def _digest_chains(plan: Plan, out: Path, files: list[LogFile]) -> list[DigestChain]:
    by_stream: dict[tuple[str, str], list[LogFile]] = {}
    for f in files:
        by_stream.setdefault((f.account_id, f.region), []).append(f)
    horizon = max((f.delivered for f in files), default=day_epoch(plan.start, plan.days))
    org = plan.org
    chains = []
    for account in org.accounts:
        for region in org.regions:
            offset = derive_seed(plan.seed, "digest-offset", account.account_id, region) % 3600
            first_end = day_epoch(plan.start, 0) + 1 + offset
            last_end = first_end + ((horizon - first_end) // 3600 + 1) * 3600
            stream = sorted(
                by_stream.get((account.account_id, region), []), key=lambda f: (f.delivered, f.key)
            )
            fingerprint = hex_string(rng_for(plan.seed, "digest-key", region), 32)
            chains.append(
                DigestChain(
                    out=out,
                    org_id=plan.org_id,
                    bucket=org.trail_bucket,
                    home_region=org.home_region,
                    account_id=account.account_id,
                    region=region,
                    first_end=first_end,
                    last_end=last_end,
                    fingerprint=fingerprint,
                    files=tuple(stream),
                )
            )
    return chains


def _write_digests(chains: list[DigestChain], pool: Pool | None) -> tuple[int, int]:
    if pool is None:
        results = [write_digest_chain(c) for c in chains]
    else:
        results = pool.map(write_digest_chain, chains)
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _minute_floor(epoch: int) -> str:
    return iso_from_epoch(epoch - epoch % 60)


def _minute_ceil(epoch: int) -> str:
    return iso_from_epoch(epoch - epoch % 60 + 60)


def _labels(
    plan: Plan,
    fragments: dict[str, tuple[list[str], int, int]],
    affected: dict[str, set[str]],
    corrupt_objects: list[dict[str, Any]],
    bad_records: list[dict[str, Any]],
    hostile_records: list[dict[str, Any]],
) -> dict[str, Any]:
    org = plan.org
    scenarios = []
    for spec in plan.scenarios:
        found = fragments.get(spec.sid)
        if found is None:
            continue
        ids, first, last = found
        caused = fragments.get(consequence_of(spec.sid))
        if caused is not None:
            ids, first, last = ids + caused[0], min(first, caused[1]), max(last, caused[2])
        actors: list[str] = []
        if spec.actor is not None:
            actors.append(spec.actor if isinstance(spec.actor, str) else spec.actor.arn)
        if spec.kind == "key_disabled_then_deletion" and spec.workload is not None:
            actors.append(plan.workload(spec.workload).actor)
        hurt = sorted(affected.get(consequence_of(spec.sid), set()))
        actors += [a for a in hurt if a not in actors]
        entry: dict[str, Any] = {
            "id": spec.sid,
            "kind": spec.kind,
            "malicious": spec.malicious,
            "description": spec.description,
            "window_start": _minute_floor(first),
            "window_end": _minute_ceil(last),
            "key_arns": [k.arn for k in spec.keys],
            "actors": actors,
            "event_ids": ids,
        }
        baseline = fragments.get(f"{spec.sid}#baseline")
        if baseline is not None:
            entry["baseline_event_ids"] = baseline[0]
        if caused is not None:
            # legitimate callers failing because of the attack: part of its incident, not its
            # perpetrators (their actors are listed in "actors" and, apart, here)
            entry["consequence_event_ids"] = caused[0]
            entry["affected_actors"] = hurt
        scenarios.append(entry)
    return {
        "generator": "keytrail",
        "seed": plan.seed,
        "start": plan.start.isoformat(),
        "days": plan.days,
        "events_per_day": plan.events_per_day,
        "org_id": plan.org_id,
        "accounts": {a.account_id: a.name for a in org.accounts},
        "outside_accounts": list(org.outside_accounts),
        "regions": list(org.regions),
        "trail": {
            "bucket": org.trail_bucket,
            "name": trail_name(plan.org_id),
            "home_region": org.home_region,
        },
        "keys": [
            {
                "arn": k.arn,
                "alias": k.alias,
                "key_spec": k.spec,
                "rotation_enabled": k.rotation_enabled,
                "production": k.production,
            }
            for k in org.keys
        ],
        "scenarios": scenarios,
        **_not_planted(plan.days),
        "corrupt_objects": corrupt_objects,
        "bad_records": bad_records,
        "hostile_records": hostile_records,
    }


def _not_planted(days: int) -> dict[str, Any]:
    """labels.json says so when it has no scenarios because the tree is too short (trees that
    have them keep their bytes: no field is added)."""
    reason = scenarios_missing(days)
    return {} if reason is None else {"scenarios_planted": False, "scenarios_missing": reason}


def _merge(
    into: dict[str, tuple[list[str], int, int]], part: dict[str, tuple[list[str], int, int]]
) -> None:
    for sid, (ids, first, last) in part.items():
        have = into.get(sid)
        if have is None:
            into[sid] = (list(ids), first, last)
        else:
            into[sid] = (have[0] + ids, min(have[1], first), max(have[2], last))


def generate_tree(
    out: Path,
    *,
    days: int,
    events_per_day: int,
    seed: int,
    start: date = date(2026, 11, 1),
    org_id: str | None = None,
    corrupt: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateSummary:
    """Write a synthetic CloudTrail tree (native S3 layout) and ``labels.json`` under ``out``.

    The same arguments always give byte-identical trees, whatever ``workers`` is.
    ``progress`` is called with the number of events each finished day added.
    Refuses to write into a directory that already holds a tree.
    """
    began = time.perf_counter()
    if days < 1 or events_per_day < 1:
        raise ValueError(f"days and events_per_day must be positive (got {days}, {events_per_day})")
    if org_id is not None and not _ORG_ID.match(org_id):
        raise ValueError(f"org_id must look like o-a1b2c3d4e5 (got {org_id!r})")
    out = Path(out)
    if (out / "AWSLogs").exists() or (out / LABELS_FILE).exists():
        raise FileExistsError(f"{out} already holds a CloudTrail tree; choose an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(
        seed=seed,
        start=start,
        days=days,
        events_per_day=events_per_day,
        org_id=org_id,
        corrupt=corrupt,
    )
    workers = max(1, min(workers or os.cpu_count() or 1, days))

    results: list[_DayResult] = []
    with _worker_pool(plan, out, workers) as pool:
        for result in _run_days(plan, out, pool):
            results.append(result)
            if progress is not None:
                progress(result.events)
        results.sort(key=lambda r: r.day)
        log_files = [f for r in results for f in r.files]
        digest_count, digest_bytes = _write_digests(_digest_chains(plan, out, log_files), pool)

    fragments: dict[str, tuple[list[str], int, int]] = {}
    affected: dict[str, set[str]] = {}
    for r in results:
        _merge(fragments, r.fragments)
        for tag, actors in r.affected.items():
            affected.setdefault(tag, set()).update(actors)
    writer = TreeWriter(out)
    corrupt_objects: list[dict[str, Any]] = []
    if corrupt:
        hosts = next(r.files for r in results if r.day == plan.corrupt_day)
        corrupt_objects = write_bad_objects(
            writer, org_id, list(hosts), rng_for(seed, "bad-objects")
        )
    labels = _labels(
        plan,
        fragments,
        affected,
        corrupt_objects,
        [b for r in results for b in r.bad_records],
        [h for r in results for h in r.hostile_records],
    )
    labels_path = out / LABELS_FILE
    writer.put(
        LABELS_FILE, orjson.dumps(labels, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    )
    return GenerateSummary(
        out=out,
        files_written=len(log_files),
        digest_files=digest_count,
        events_written=sum(r.events for r in results),
        bytes_written=sum(r.bytes_written for r in results) + digest_bytes + writer.bytes_written,
        labels_path=labels_path,
        seconds=time.perf_counter() - began,
        corrupt_objects=len(corrupt_objects),
        scenarios=len(labels["scenarios"]),
        scenarios_missing=scenarios_missing(days),
    )
