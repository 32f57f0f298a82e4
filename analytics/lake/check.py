"""``keytrail lake check``: is the lake whole? A read-only integrity check, safe at any time.

It looks for what would make a stage crash, lose events or count them twice:

* every ``*.parquet`` under ``events/`` readable, in the event schema, in a partition folder
  named ``event_date=YYYY-MM-DD`` whose day its rows carry;
* no event ID twice: per day partition (one group-by each), then across days through 64-bit
  hashes of each day's distinct IDs, so memory grows with the number of IDs, not their text,
  and only colliding hashes are read again to name the events;
* ``_state/objects.parquet`` consistent with the files: an object the state records as
  ingested into a day has events there (else a file was deleted or lost), and every event comes
  from an object the state records (else a run stopped between data and state, or files were
  copied in);
* quarantine records listed with counts (not findings: quarantining is how bad input is kept).

Hidden files (a writer's ``.tmp-…`` work in progress) are ignored, as every reader ignores
them, so the check can run beside a nightly run. Findings are capped per kind; the counts are
always complete. The lake is read through its filesystem (:mod:`analytics.adapters.lake_fs`): a
folder, or an S3 lake in place, only the columns the checks use fetched, nothing kept on disk.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from analytics.adapters.lake import (
    STATE_KEY,
    LocalLake,
    lake_file_problem,
    partition_date,
    schema_mismatch,
)
from analytics.adapters.lake_fs import LakeFile
from analytics.lake import schema as s

MAX_FINDINGS_PER_KIND = 50
"""Findings listed per kind; ``finding_counts`` has the full numbers."""
_TMP_PREFIX = ".tmp-"
_FILE = "file"
_HASH = "id_hash"


class FindingKind(enum.StrEnum):
    UNREADABLE_FILE = "unreadable_file"
    SCHEMA_MISMATCH = "schema_mismatch"
    BAD_PARTITION = "bad_partition"
    STRAY_FILE = "stray_file"
    MISPLACED_EVENTS = "misplaced_events"
    DUPLICATE_EVENT = "duplicate_event"
    MISSING_EVENTS = "missing_events"
    UNRECORDED_EVENTS = "unrecorded_events"
    UNREADABLE_STATE = "unreadable_state"
    UNREADABLE_QUARANTINE = "unreadable_quarantine"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the lake: what, where (relative to the lake root), and detail."""

    kind: FindingKind
    path: str
    detail: str

    def describe(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "path": self.path, "detail": self.detail}


@dataclass(frozen=True)
class QuarantinedObject:
    source_object: str
    reason: str


@dataclass
class LakeCheck:
    """What :func:`check_lake` found; ``clean`` when there are no findings."""

    days: int = 0
    event_files: int = 0
    events: int = 0
    state_objects: int = 0
    findings: list[Finding] = field(default_factory=list)
    finding_counts: Counter[str] = field(default_factory=Counter)
    quarantined_objects: list[QuarantinedObject] = field(default_factory=list)
    quarantined_records: int = 0
    quarantined_record_objects: int = 0

    @property
    def clean(self) -> bool:
        return not self.finding_counts

    def add(self, kind: FindingKind, path: str, detail: str) -> None:
        self.finding_counts[kind] += 1
        if self.finding_counts[kind] <= MAX_FINDINGS_PER_KIND:
            self.findings.append(Finding(kind, path, detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "days": self.days,
            "event_files": self.event_files,
            "events": self.events,
            "state_objects": self.state_objects,
            "finding_counts": dict(sorted(self.finding_counts.items())),
            "findings": [f.to_dict() for f in self.findings],
            "quarantine": {
                "objects": len(self.quarantined_objects),
                "records": self.quarantined_records,
                "objects_with_bad_records": self.quarantined_record_objects,
                "quarantined_objects": [
                    {"source_object": q.source_object, "reason": q.reason}
                    for q in self.quarantined_objects[:MAX_FINDINGS_PER_KIND]
                ],
            },
        }


def is_lake(lake: LocalLake) -> bool:
    """A lake keytrail has written (it has ``events/`` or ``_state/``), in a folder or in S3."""
    folders = lake.store.folders("")
    return "events" in folders or "_state" in folders


def check_lake(lake: LocalLake) -> LakeCheck:
    """Check ``lake`` (read-only) and return every finding, typed."""
    report = LakeCheck()
    files_by_day = _event_files(lake, report)
    report.days = len(files_by_day)
    report.event_files = sum(len(files) for files in files_by_day.values())
    observed = _check_events(lake, files_by_day, report)
    _check_state(lake, observed, report)
    _list_quarantine(lake, report)
    return report


def _event_files(lake: LocalLake, report: LakeCheck) -> dict[str, list[LakeFile]]:
    """Usable event files by day (ISO date); everything else under ``events/`` a finding."""
    store = lake.store
    by_day: dict[str, list[LakeFile]] = {}
    for stray in store.files("events"):
        report.add(FindingKind.STRAY_FILE, stray.relative,
                   "a file outside any day partition; readers never see it")  # fmt: skip
    for name in store.folders("events"):
        if name.startswith(_TMP_PREFIX):
            continue
        day = partition_date(name)
        if day is None:
            report.add(
                FindingKind.BAD_PARTITION,
                f"events/{name}",
                f"not a partition name ({s.EVENT_DATE}=YYYY-MM-DD); readers skip it",
            )
            continue
        usable = []
        for file in store.files(f"events/{name}"):
            if not file.name.endswith(".parquet"):
                report.add(FindingKind.STRAY_FILE, file.relative,
                           "not a .parquet file; readers never see it")  # fmt: skip
                continue
            problem = lake_file_problem(store, file, s.EVENT_SCHEMA, "event")
            if problem is None:
                usable.append(file)
            elif problem.startswith("not in the event schema"):
                report.add(FindingKind.SCHEMA_MISMATCH, file.relative, problem)
            else:
                report.add(FindingKind.UNREADABLE_FILE, file.relative, problem)
        if usable:
            by_day[day.isoformat()] = usable
    return by_day


def _read(lake: LocalLake, files: Sequence[LakeFile], columns: Sequence[str]) -> pl.DataFrame:
    """``columns`` of event files as stored, of either shape (``event_date`` inside or not: a
    column a file lacks is null), each row with its file's lake path in ``file``."""
    frames = []
    for file in files:
        present = set(lake.store.read_schema(file).names)
        table = lake.store.read_table([file], [c for c in columns if c in present])
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        missing = [pl.lit(None, pl.Date if c == s.EVENT_DATE else pl.String).alias(c)
                   for c in columns if c not in present]  # fmt: skip
        frames.append(
            frame.with_columns(*missing, pl.lit(file.relative).alias(_FILE)).select(*columns, _FILE)
        )
    return pl.concat(frames, how="vertical_relaxed")


def _check_events(
    lake: LocalLake, files_by_day: dict[str, list[LakeFile]], report: LakeCheck
) -> pl.DataFrame:
    """Rows per day, misplaced rows, duplicates within and across days; returns the events per
    (source object, day) for the state check.

    A day's two narrow columns are read once (on S3, only those columns' chunks are fetched);
    only files written before ``event_date`` left the files are read for a third."""
    hashes: list[pl.DataFrame] = []
    per_object: list[pl.DataFrame] = []
    for day, files in files_by_day.items():
        events = _read(lake, files, [s.EVENT_ID, s.SOURCE_OBJECT])
        report.events += events.height
        # Only files written before event_date left the files can hold another day's rows.
        dated = [f for f in files if s.EVENT_DATE in lake.store.read_schema(f).names]
        if dated:
            _name_misplaced(_read(lake, dated, [s.EVENT_DATE]), day, report)
        repeated = (
            events.group_by(s.EVENT_ID).len().filter(pl.col("len") > 1).get_column(s.EVENT_ID)
        )
        if not repeated.is_empty():
            _name_duplicates(events, day, repeated, report)
        hashes.append(
            events.select(pl.col(s.EVENT_ID).hash(seed=0).unique().alias(_HASH)).with_columns(
                pl.lit(day).alias("day")
            )
        )
        per_object.append(
            events.group_by(s.SOURCE_OBJECT)
            .agg(pl.len().alias("rows"))
            .with_columns(pl.lit(day).alias("day"))
        )
        del events
    _duplicates_across_days(lake, files_by_day, hashes, report)
    if not per_object:
        return pl.DataFrame(
            schema={s.SOURCE_OBJECT: pl.String, "rows": pl.UInt32, "day": pl.String}
        )
    return pl.concat(per_object)


def _name_misplaced(dates: pl.DataFrame, day: str, report: LakeCheck) -> None:
    found = (
        dates.filter(pl.col(s.EVENT_DATE).cast(pl.String) != day)
        .group_by(_FILE)
        .agg(pl.len().alias("rows"), pl.col(s.EVENT_DATE).min().alias("example"))
        .sort(_FILE)
    )
    for file, rows, example in found.iter_rows():
        report.add(
            FindingKind.MISPLACED_EVENTS,
            file,
            f"{rows:,} row(s) of another day (e.g. {example}) in the {day} partition",
        )


def _name_duplicates(
    events: pl.DataFrame, day: str, repeated: pl.Series, report: LakeCheck
) -> None:
    found = (
        events.filter(pl.col(s.EVENT_ID).is_in(repeated.implode()))
        .group_by(s.EVENT_ID)
        .agg(pl.len().alias("rows"), pl.col(_FILE).unique().sort().alias("files"))
        .sort(s.EVENT_ID)
    )
    for event_id, rows, files_of in found.iter_rows():
        report.add(
            FindingKind.DUPLICATE_EVENT,
            f"events/{s.EVENT_DATE}={day}",
            f"event {event_id!r} is stored {rows} times ({', '.join(files_of)})",
        )


def _duplicates_across_days(
    lake: LocalLake,
    files_by_day: dict[str, list[LakeFile]],
    hashes: list[pl.DataFrame],
    report: LakeCheck,
) -> None:
    """The global pass: hashes seen on two or more days, then the events behind them (only
    the days holding such a hash are read again)."""
    if len(hashes) < 2:
        return
    shared = (
        pl.concat(hashes)
        .group_by(_HASH)
        .agg(pl.col("day").n_unique().alias("days"), pl.col("day").unique().alias("on"))
        .filter(pl.col("days") > 1)
    )
    if shared.is_empty():
        return
    wanted = shared.get_column(_HASH).implode()
    days = sorted(set(shared.get_column("on").explode().to_list()))
    suspects = pl.concat(
        [
            _read(lake, files_by_day[day], [s.EVENT_ID]).filter(
                pl.col(s.EVENT_ID).hash(seed=0).is_in(wanted)
            )
            for day in days
        ]
    )
    found = (
        suspects.group_by(s.EVENT_ID)
        .agg(pl.col(_FILE).unique().sort().alias("files"))
        .filter(pl.col("files").list.len() > 1)
        .sort(s.EVENT_ID)
    )
    for event_id, files_of in found.iter_rows():
        report.add(
            FindingKind.DUPLICATE_EVENT,
            "events",
            f"event {event_id!r} is stored in more than one day partition ({', '.join(files_of)})",
        )


def _check_state(lake: LocalLake, observed: pl.DataFrame, report: LakeCheck) -> None:
    """State rows against the events: recorded objects with no events, events with no record."""
    state_path = STATE_KEY
    state_file = lake.store.file(STATE_KEY)
    if state_file is None:
        if report.events:
            report.add(
                FindingKind.UNRECORDED_EVENTS,
                state_path,
                f"missing, yet the lake holds {report.events:,} event(s)",
            )
        return
    try:
        table = lake.store.read_table([state_file])
        problem = schema_mismatch(table.schema, s.OBJECT_STATE_SCHEMA)
        if problem:
            raise ValueError(problem)
        frame = pl.from_arrow(table.cast(s.OBJECT_STATE_SCHEMA))
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        report.add(FindingKind.UNREADABLE_STATE, state_path, f"cannot be read ({first})")
        return
    assert isinstance(frame, pl.DataFrame)
    report.state_objects = frame.height
    recorded = (
        frame.filter((pl.col(s.OBJ_STATUS) == s.STATUS_INGESTED) & (pl.col(s.OBJ_EVENTS) > 0))
        .select(pl.col(s.OBJ_KEY).alias(s.SOURCE_OBJECT), pl.col(s.OBJ_DATES_WRITTEN).alias("day"))
        .explode("day")
        .drop_nulls("day")
        .with_columns(pl.col("day").cast(pl.String))
    )
    missing = (
        recorded.join(observed, on=[s.SOURCE_OBJECT, "day"], how="anti")
        .group_by("day")
        .agg(pl.len().alias("objects"), pl.col(s.SOURCE_OBJECT).sort().first().alias("example"))
        .sort("day")
    )
    for day, objects, example in missing.iter_rows():
        report.add(
            FindingKind.MISSING_EVENTS,
            f"events/{s.EVENT_DATE}={day}",
            f"{state_path} records {objects:,} object(s) as ingested into this day "
            f"(e.g. {example!r}) but none of their events is here: an event file was "
            f"deleted or lost (or every event of the object was a duplicate of another "
            f"object's)",
        )
    known = frame.filter(pl.col(s.OBJ_STATUS) == s.STATUS_INGESTED).select(
        pl.col(s.OBJ_KEY).alias(s.SOURCE_OBJECT)
    )
    unrecorded = (
        observed.join(known, on=s.SOURCE_OBJECT, how="anti")
        .group_by("day")
        .agg(
            pl.col("rows").sum().alias("rows"),
            pl.len().alias("objects"),
            pl.col(s.SOURCE_OBJECT).sort().first().alias("example"),
        )
        .sort("day")
    )
    for day, rows, objects, example in unrecorded.iter_rows():
        report.add(
            FindingKind.UNRECORDED_EVENTS,
            f"events/{s.EVENT_DATE}={day}",
            f"{rows:,} event(s) from {objects:,} object(s) (e.g. {example!r}) that "
            f"{state_path} does not record as ingested: a run stopped between writing "
            f"data and state (the next ingest re-reads them), or files were copied in",
        )


def _list_quarantine(lake: LocalLake, report: LakeCheck) -> None:
    store = lake.store
    for file in store.files("quarantine/objects"):
        if not file.name.endswith(".json"):
            continue
        try:
            record = json.loads(store.read_bytes(file.relative))
            entry = QuarantinedObject(str(record["source_object"]), str(record["reason"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            report.add(
                FindingKind.UNREADABLE_QUARANTINE,
                file.relative,
                f"not a quarantine record ({type(exc).__name__})",
            )
            continue
        report.quarantined_objects.append(entry)
    for file in store.files("quarantine/records"):
        if not file.name.endswith(".jsonl"):
            continue
        try:
            lines = sum(1 for line in store.read_bytes(file.relative).splitlines() if line.strip())
        except OSError as exc:
            report.add(
                FindingKind.UNREADABLE_QUARANTINE,
                file.relative,
                f"cannot be read ({exc.strerror or exc})",
            )
            continue
        report.quarantined_records += lines
        report.quarantined_record_objects += 1
