"""Golden files of every report of the embedded sample trail's last day (data/samples/trail).

The sample lake is ingested and scored as `make demo` does, then reported with a pinned
``generated_at`` (the session fixture ``sample_report``); an intended change is accepted with
``KEYTRAIL_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import pytest

from analytics.publish.reports import schemas as r
from tests.publish.conftest import BuiltReport
from tests.publish.helpers import assert_golden


@pytest.mark.parametrize(
    "name", [*(f"{stem}.csv" for stem in sorted(r.REPORT_TABLES)), "report.md", "report.html",
             "summary.json"],
)  # fmt: skip
def test_sample_tree_report_matches_golden(sample_report: BuiltReport, name: str) -> None:
    assert_golden(f"sample-tree/{name}", sample_report.files[name].read_text("utf-8"))
