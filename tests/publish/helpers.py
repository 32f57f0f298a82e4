"""Helpers for the publishing tests: golden files, report inputs from records, lake copies."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.adapters.lake import LocalLake, write_parquet_atomic
from analytics.detect import features
from analytics.detect.scoring import alerts_path, read_alerts
from analytics.lake import schema as s
from analytics.publish.reports import inputs as report_inputs
from analytics.publish.reports._records import REPORT_EVENTS
from analytics.publish.reports.inputs import ReportInputs
from analytics.publish.reports.keyfacts import WALK_COLUMNS
from tests.detectors.helpers import events_from_records

GOLDEN = Path(__file__).parent / "golden"
HEC_TOKEN = "11111111-2222-3333-4444-5555deadbeef"  # a made-up token the tests look for
HEC_OK = (200, b'{"text":"Success","code":0}', {})
UPDATE = os.environ.get("KEYTRAIL_UPDATE_GOLDEN") == "1"


def assert_golden(name: str, actual: str | bytes) -> None:
    """Compare with ``golden/<name>``; ``KEYTRAIL_UPDATE_GOLDEN=1`` rewrites it instead."""
    path = GOLDEN / name
    data = actual.encode("utf-8") if isinstance(actual, str) else actual
    if UPDATE or not path.exists():
        if not UPDATE:
            raise AssertionError(
                f"golden file {path} is missing; run with KEYTRAIL_UPDATE_GOLDEN=1 to create it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    expected = path.read_bytes()
    if expected != data:
        diff = "".join(
            difflib.unified_diff(
                expected.decode("utf-8", "replace").splitlines(keepends=True),
                data.decode("utf-8", "replace").splitlines(keepends=True),
                fromfile=f"golden/{name}",
                tofile="actual",
                n=1,
            )
        )
        raise AssertionError(
            f"{name} differs from its golden file (KEYTRAIL_UPDATE_GOLDEN=1 to accept):\n"
            + diff[:6000]
        )


def inputs_from_records(
    records: Iterable[Mapping[str, Any]],
    day: dt.date,
    alerts: pl.DataFrame | None = None,
    org_accounts: frozenset[str] = frozenset(),
) -> ReportInputs:
    """Report inputs built straight from CloudTrail records, no lake (for builder unit tests)."""
    events = events_from_records(records)
    history = events.filter(pl.col(s.EVENT_DATE) <= day)
    day_events = events.filter(pl.col(s.EVENT_DATE) == day)
    management = history.filter(
        (pl.col(s.EVENT_SOURCE) == "kms.amazonaws.com") & pl.col(s.EVENT_NAME).is_in(REPORT_EVENTS)
    ).select(WALK_COLUMNS)
    activity = report_inputs.key_activity(history.lazy()).collect()
    prior = (
        history.filter(pl.col(s.EVENT_DATE) < day)
        .select(s.KEY_ARN, pl.col(s.ACTOR).fill_null("(unidentified)"))
        .drop_nulls(s.KEY_ARN)
        .unique()
    )
    dates = sorted(set(history.get_column(s.EVENT_DATE).to_list()))
    hourly = pl.concat(
        [features.compute_day(history.filter(pl.col(s.EVENT_DATE) == d), d) for d in dates]
        or [features.compute_day(day_events, day)],
        how="vertical_relaxed",
    )
    empty_alerts = pl.from_arrow(s.ALERT_SCHEMA.empty_table())
    assert isinstance(empty_alerts, pl.DataFrame)
    return ReportInputs(
        day=day,
        day_events=day_events,
        management_events=management,
        key_activity=activity,
        prior_pairs=prior,
        alerts=alerts if alerts is not None else empty_alerts,
        hourly_features=hourly,
        lake_first_day=dates[0] if dates else None,
        org_accounts=report_inputs.org_accounts_of(activity, org_accounts),
    )


def copy_lake(lake: LocalLake, target: Path) -> LocalLake:
    """A private copy of a session lake, for tests that write into it (ledgers, reports)."""
    shutil.copytree(lake.root, target)
    return LocalLake(target)


def alert_keys(keys: Iterable[str | None]) -> set[str]:
    """The alert IDs among ledger keys or HEC ``fields.alert_id`` values (incidents are
    recorded as ``incident_id:version`` and carry no alert_id)."""
    return {key for key in keys if key and ":" not in key}


def detections(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The OCSF Detection Findings (class 2004) among exported lines, without the incidents."""
    return [d for d in documents if d.get("class_uid") == 2004]


MEGABYTE_AGENT = "Boto3/1.35 " + "A" * (1024 * 1024 - 11)  # a 1 MiB user agent, ASCII
ROOT_ALERT_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def stuff_lake(lake: LocalLake, day: dt.date, event_id: str, user_agent: str,
               extra_evidence: int = 0) -> None:  # fmt: skip
    """Give one event of ``day`` a hostile ``user_agent`` in place, as a stuffed record would
    arrive; the root alert quotes it in its reason (as the root-usage rule does) and gets
    ``extra_evidence`` more evidence event IDs."""
    for path in lake.partition_files(day):
        table = pq.read_table(path)
        ids = table.column(s.EVENT_ID).to_pylist()
        if event_id not in ids:
            continue
        agents = [user_agent if i == event_id else a
                  for i, a in zip(ids, table.column(s.USER_AGENT).to_pylist(), strict=True)]  # fmt: skip
        column = table.schema.get_field_index(s.USER_AGENT)
        table = table.set_column(column, table.schema.field(column),
                                 pa.array(agents, table.schema.field(column).type))  # fmt: skip
        write_parquet_atomic(table, path)
    root = pl.col(s.ALERT_ID) == ROOT_ALERT_ID
    more = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(extra_evidence)]
    alerts = read_alerts(lake, day).with_columns(
        pl.when(root)
        .then(pl.col(s.EVIDENCE_EVENT_IDS).list.concat(pl.lit(more, dtype=pl.List(pl.String))))
        .otherwise(pl.col(s.EVIDENCE_EVENT_IDS))
        .alias(s.EVIDENCE_EVENT_IDS),
        pl.when(root)
        .then(pl.lit(f"The root user called KMS with user agent {user_agent}"))
        .otherwise(pl.col(s.REASON))
        .alias(s.REASON),
    )
    write_parquet_atomic(alerts.to_arrow().cast(s.ALERT_SCHEMA), alerts_path(lake, day))
