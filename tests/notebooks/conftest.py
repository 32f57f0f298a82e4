"""A scored lake built from the embedded sample trail, and a runner for the analyst notebooks.

The lake is what `keytrail demo` builds, with detection run on the last three days (not only
the last one), so the notebooks find model alerts, rule alerts and related alerts across days.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.detect.scoring import run
from analytics.ingest.pipeline import IngestOptions, ingest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "trail"
NOTEBOOKS = REPO / "notebooks"
SCORED_DAYS = (dt.date(2026, 11, 12), dt.date(2026, 11, 13), dt.date(2026, 11, 14))


@pytest.fixture(scope="session")
def scored_lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    lake = LocalLake(tmp_path_factory.mktemp("notebooks") / "lake")
    ingest(LocalSource(SAMPLES), lake, IngestOptions(workers=1))
    for day in SCORED_DAYS:
        run(lake, day, today=dt.date(2026, 11, 29))
    return lake


def run_notebook(name: str, lake: Path, results: Path, **parameters: Any) -> dict[str, Any]:
    """Execute ``notebooks/<name>`` top to bottom and return the figures it wrote.

    Parameters are injected the way papermill does: a cell right after the one tagged
    ``parameters`` assigns the lake, the results path and any overrides, so the notebook
    itself stays exactly as committed.
    """
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    ]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    assignments = {"LAKE": str(lake), "RESULTS": str(results), **parameters}
    source = "\n".join(f"{key} = {value!r}" for key, value in assignments.items())
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(tagged[0] + 1, injected)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    # Agg: every chart is drawn (so a plotting error fails the test) but nothing is displayed.
    client.execute(env={**os.environ, "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    return json.loads(results.read_text())
