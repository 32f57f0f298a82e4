"""Golden files of every report of the fixture lake's report day.

The content is deterministic (sorted rows, pinned ``generated_at``), so any change to a report
shows up here as a diff; accept an intended change with ``KEYTRAIL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from analytics.publish.reports import csv_safe
from analytics.publish.reports import schemas as r
from tests.publish.conftest import BuiltReport
from tests.publish.helpers import assert_golden

TABLES = sorted(r.REPORT_TABLES)


@pytest.mark.parametrize("stem", TABLES)
def test_csv_report_matches_golden(fixture_report: BuiltReport, stem: str) -> None:
    assert_golden(f"{stem}.csv", fixture_report.files[f"{stem}.csv"].read_text("utf-8"))


@pytest.mark.parametrize("stem", TABLES)
def test_parquet_report_has_declared_schema_and_the_csv_content(
    fixture_report: BuiltReport, stem: str
) -> None:
    path = fixture_report.files[f"{stem}.parquet"]
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == r.REPORT_TABLES[stem]
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert csv_safe.to_csv(frame) == fixture_report.files[f"{stem}.csv"].read_text("utf-8")


@pytest.mark.parametrize("name", ["report.md", "report.html", "summary.json"])
def test_document_matches_golden(fixture_report: BuiltReport, name: str) -> None:
    assert_golden(name, fixture_report.files[name].read_text("utf-8"))


def test_report_is_the_same_when_built_twice(fixture_report: BuiltReport) -> None:
    from analytics.publish import reports
    from tests.publish import fixture

    again, _files = reports.run(fixture_report.lake, fixture.DAY, generated_at=fixture.GENERATED_AT)
    from analytics.publish.reports import html, markdown

    assert html.render(again) == fixture_report.files["report.html"].read_text("utf-8")
    assert markdown.render(again) == fixture_report.files["report.md"].read_text("utf-8")


def test_every_report_file_is_written(fixture_report: BuiltReport) -> None:
    names = set(fixture_report.files)
    for stem in TABLES:
        assert {f"{stem}.parquet", f"{stem}.csv"} <= names
    assert {"report.html", "report.md", "summary.json"} <= names
    folder = fixture_report.lake.root / "reports" / "2026-11-09"
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
