"""The backfill flow: the nightly pipeline over a range of days, in order, resumable.

* Days that already completed with the same inputs (``LAKE/_state/days/D.json`` and the same
  event files, configuration and sinks) are skipped unless ``force``; a completion record is
  written only after a day's last stage, so a killed or failed backfill resumes at the first
  day it did not finish.
* The range is ingested once, with the same partitioned fan-out as the nightly run, then the
  days are scored oldest first. Each day's baselines come from the days before it only —
  :func:`analytics.detect.baselines.build` takes the window ``[D - N, D - 1]`` — so events of later
  days already in the lake cannot leak into an earlier day's scores, and a backfilled day gets the
  alerts the nightly run would have given it.
* A day without events is reported and left incomplete (the trail may not have existed yet, or
  may have been stopped); a failed stage stops the backfill there, with the reason.
"""

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger

from analytics.adapters.lock import DEFAULT_TTL
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import IngestSummary
from analytics.run import DayOutcome, completed, run_title
from flows.nightly import (
    StageFailed,
    current_flow_run_id,
    held,
    ingest_stage,
    inputs_fingerprint,
    lock_command,
    process_day,
    publish_artifacts,
    resolve_settings,
)
from flows.runtime import default_task_runner

MAX_DAYS = 3660


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _backfill_run_name() -> str:
    from prefect.runtime import flow_run

    return f"backfill-{flow_run.parameters.get('start')}..{flow_run.parameters.get('end')}"


@flow(name="keytrail-backfill", flow_run_name=_backfill_run_name,
      task_runner=default_task_runner(),
      description="The nightly pipeline over a range of days, in order, resumable.")  # fmt: skip
def backfill(
    source: str,
    lake: str,
    start: dt.date,
    end: dt.date,
    config: str | None = None,
    sinks: list[str] | None = None,
    endpoint_url: str | None = None,
    force: bool = False,
    inventory_regions: list[str] | None = None,
    hec_token_block: str | None = None,
    lock_ttl_hours: float = DEFAULT_TTL.total_seconds() / 3600,
    lock_wait_seconds: float = 0.0,
    lake_kms_key: str | None = None,
) -> dict[str, Any]:
    """Ingest ``start``..``end`` and score each day in order, skipping completed days."""
    if start > end:
        raise StageFailed("settings", f"start {start} is after end {end}")
    if (end - start).days >= MAX_DAYS:
        raise StageFailed("settings", f"at most {MAX_DAYS} days per backfill")
    settings = resolve_settings(source, lake, config, sinks, endpoint_url, inventory_regions,
                                hec_token_block, lock_ttl_hours, lake_kms_key)  # fmt: skip
    logger = get_run_logger()
    title = run_title("backfill", f"{start}..{end}", settings.source.describe(),
                      settings.lake_name)  # fmt: skip
    ingest: IngestSummary | None = None
    outcomes: list[DayOutcome] = []
    try:
        with held(settings, lock_command("backfill", f"{start}..{end}"),
                  lock_wait_seconds) as lock:  # fmt: skip
            todo = []
            for day in days_between(start, end):
                fingerprint = inputs_fingerprint(settings, day)
                earlier = None if force else completed(settings.lake, day, fingerprint)
                if earlier is not None:
                    outcomes.append(earlier)
                else:
                    todo.append(day)
            logger.info("backfill %s..%s: %d day(s) to do, %d already complete",
                        start, end, len(todo), len(outcomes))  # fmt: skip
            if todo:
                ingest = ingest_stage(settings, Selection(todo[0], todo[-1]), lock.refresh)
                lock.refresh()
            for day in todo:
                if not settings.lake.event_files(day):
                    logger.warning("%s: no events in the lake for this day; left incomplete", day)
                    outcomes.append(DayOutcome.nothing_to_score(day))
                    continue
                outcomes.append(process_day(settings, day, lock, force))
                lock.refresh()
    except Exception as exc:
        publish_artifacts("backfill", title, ingest, _by_date(outcomes), str(exc))
        raise
    ordered = _by_date(outcomes)
    publish_artifacts("backfill", title, ingest, ordered)
    return {
        "flow_run_id": current_flow_run_id(),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "source": settings.source.describe(),
        "lake": settings.lake_name,
        "ingest": ingest.to_dict() if ingest else None,
        "days": [outcome.to_dict() for outcome in ordered],
    }


def _by_date(outcomes: list[DayOutcome]) -> list[DayOutcome]:
    return sorted(outcomes, key=lambda outcome: outcome.date)
