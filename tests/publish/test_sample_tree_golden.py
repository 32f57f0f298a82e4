"""Golden files of every report of the embedded sample trail's last day (data/samples/trail).

The sample lake is ingested and scored as `make demo` does, then reported with a pinned
``generated_at``; an intended change is accepted with ``KEYTRAIL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics import reports
from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.detect import run
from analytics.ingest import IngestOptions, ingest
from analytics.reports import schemas as r
from tests.publish.helpers import assert_golden

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "trail"
DAY = dt.date(2026, 11, 14)
GENERATED_AT = dt.datetime(2026, 11, 15, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    lake = LocalLake(tmp_path_factory.mktemp("samples") / "lake")
    ingest(LocalSource(SAMPLES), lake, IngestOptions(workers=1))
    run(lake, DAY, today=DAY)
    _, files = reports.run(lake, DAY, generated_at=GENERATED_AT)
    return files


@pytest.mark.parametrize(
    "name", [*(f"{stem}.csv" for stem in sorted(r.REPORT_TABLES)), "report.md", "report.html",
             "summary.json"],
)  # fmt: skip
def test_sample_tree_report_matches_golden(sample_report: dict[str, Path], name: str) -> None:
    assert_golden(f"sample-tree/{name}", sample_report[name].read_text("utf-8"))
