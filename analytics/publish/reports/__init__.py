"""The daily reports: key usage, rotation, key policy and grant audit, key inventory, and the
HTML and Markdown documents that gather them (``LAKE/reports/YYYY-MM-DD/``).

Builders are pure functions over frames (:mod:`analytics.publish.reports.daily` ``build``); reading
the lake (:mod:`analytics.publish.reports.inputs`, through :mod:`analytics.api` like the notebooks)
and writing files (``daily.write``) are kept apart so the builders can be tested on hand-made frames
and the documents pinned by golden files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from analytics.adapters.kms_inventory import KeySnapshot
from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect.baselines import DEFAULT_WINDOW_DAYS
from analytics.publish.reports.daily import DailyReport, build, report_dir, write
from analytics.publish.reports.inputs import ReportInputs, load

__all__ = ["DailyReport", "ReportInputs", "build", "load", "report_dir", "run", "write"]


def run(
    lake: LocalLake,
    day: dt.date,
    *,
    generated_at: dt.datetime | None = None,
    snapshots: Sequence[KeySnapshot] = (),
    org_accounts: frozenset[str] = frozenset(),
    window_days: int = DEFAULT_WINDOW_DAYS,
    notes: Sequence[str] = (),
    config: Config | None = None,
    lake_name: str | None = None,
) -> tuple[DailyReport, dict[str, Path]]:
    """Load, build and write every report of ``day``; returns the report and the files."""
    inputs = load(lake, day, window_days, org_accounts, config, lake_name)
    report = build(
        inputs,
        generated_at or dt.datetime.now(dt.UTC).replace(microsecond=0),
        snapshots,
        window_days=window_days,
        notes=notes,
    )
    return report, write(lake, report)
