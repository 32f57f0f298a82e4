"""The dependency direction of DESIGN.md: flows → analytics → data libraries, never back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _loaded_after(imports: str) -> set[str]:
    code = f"import sys; {imports}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPO)  # fmt: skip
    return set(result.stdout.split())


def test_analytics_loads_neither_prefect_nor_boto3() -> None:
    modules = _loaded_after(
        "import analytics.ingest.pipeline, analytics.detect.scoring, analytics.ingest.cloudtrail, analytics.detect.features, "
        "analytics.detect.baselines, analytics.detect.model, analytics.detect.alerts, analytics.generator, "
        "analytics.detect.evaluate"
    )
    assert not {m for m in modules if m == "prefect" or m.startswith("prefect.")}
    assert "boto3" not in modules and "botocore" not in modules


def test_boto3_is_imported_only_by_adapters() -> None:
    offenders = []
    for path in (REPO / "analytics").rglob("*.py"):
        if "adapters" in path.parts:
            continue
        text = path.read_text()
        if "import boto3" in text or "from boto3" in text or "import botocore" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_the_core_library_does_not_load_the_synthetic_generator() -> None:
    """The generator makes demo and test data; nothing a deployment runs may depend on it."""
    modules = _loaded_after(
        "import analytics.api, analytics.detect.scoring, analytics.ingest.pipeline, analytics.publish.reports, "
        "analytics.publish.export, analytics.lake.check, analytics.lake.ddl, analytics.detect.history"
    )
    assert not {m for m in modules if m.startswith("analytics.generator")}


def test_no_sql_is_built_by_formatting_values() -> None:
    """SQL lives in sql/ and reaches DuckDB through analytics/sql.py with bound parameters."""
    callers = []
    for path in (REPO / "analytics").rglob("*.py"):
        text = path.read_text()
        if "duckdb" in text and path.name != "sql.py":
            callers.append(str(path.relative_to(REPO)))
    assert callers == []


def test_every_sql_file_declares_its_contract() -> None:
    files = sorted((REPO / "sql").glob("*.sql"))
    assert files
    for path in files:
        header = path.read_text().split("\n\n", 1)[0]
        for field in ("purpose", "grain", "inputs", "params", "output"):
            assert f"-- {field}" in header, f"{path.name} lacks '-- {field}' in its header"
