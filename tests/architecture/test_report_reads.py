"""The daily report reads the lake through analytics.api, as the notebooks do (writing is its own).

The report and a notebook must never disagree about a day's events, alerts or usual range, so
analytics/publish/reports/ has no read path of its own: no Parquet reader, no lake read helper. The
check walks the syntax tree, so docstrings may still name the functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "analytics" / "publish" / "reports"

READERS = frozenset({
    "read_parquet", "scan_parquet", "read_table", "ParquetFile", "ParquetDataset",  # Parquet
    "read_alerts", "read_day_events", "partition_files",  # the lake's own read helpers
})  # fmt: skip
READER_MODULES = frozenset(
    {"pyarrow.parquet", "pyarrow.dataset", "duckdb", "analytics.detect.features"}
)


def _reads(module: str, name: str) -> bool:
    return module in READER_MODULES or f"{module}.{name}" in READER_MODULES or name in READERS


def direct_reads(source: str) -> list[str]:
    """Every use of a reader name or import of a reader module in ``source``, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in READERS:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in READERS:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if a.name in READER_MODULES]  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if _reads(node.module, a.name)]  # fmt: skip
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import polars as pl\nframe = pl.read_parquet(path)",
        "lazy = pl.scan_parquet(files)",
        "import pyarrow.parquet as pq",
        "from pyarrow import parquet",
        "from analytics.detect.scoring import read_alerts",
        "from analytics.detect import features",
        "files = lake.partition_files(day)",
    ],
)
def test_the_check_sees_a_direct_read(source: str) -> None:
    assert direct_reads(source)


def test_the_check_lets_writes_and_docstrings_through() -> None:
    source = '"""Not pl.read_parquet."""\nfrom analytics import api\nframe.write_parquet(p)'
    assert direct_reads(source) == []


def test_reports_read_the_lake_only_through_the_api() -> None:
    modules = sorted(REPORTS.glob("*.py"))
    assert len(modules) > 3, REPORTS  # the check must see the package it guards
    offenders = {
        str(path.relative_to(REPO)): hits
        for path in modules
        if (hits := direct_reads(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "read the lake with analytics.api (extend it if it lacks something)"


def test_report_inputs_use_the_api() -> None:
    tree = ast.parse((REPORTS / "inputs.py").read_text(encoding="utf-8"))
    imported = {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert ("analytics", "api") in imported


@pytest.mark.parametrize(
    "first", ["analytics.api", "analytics.publish.reports", "analytics.publish.reports.html"]
)
def test_api_and_reports_import_in_either_order(first: str) -> None:
    """The reports read through api; api must never need the reports package to import."""
    code = (
        f"import {first}; from analytics import api; from analytics.publish import reports; "
        "print(api.events, reports.load)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)


def test_the_api_does_not_import_the_reports_package() -> None:
    """The band code both use lives in analytics.detect.bands, so there is no import cycle."""
    code = "import sys, analytics.api; print('analytics.publish.reports' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True,
                         text=True)  # fmt: skip
    assert out.stdout.strip() == "False"
