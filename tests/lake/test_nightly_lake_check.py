"""The nightly flow checks the lake after ingest and reports findings without failing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analytics.publish.reports.run_summary import lake_check_markdown
from analytics.run import LakeCheckOutcome
from tests.lake.conftest import LAST_DAY, SAMPLES, keytrail_process

FIRST_DAY = "2026-11-01"


@pytest.mark.xdist_group("prefect")
def test_the_nightly_run_reports_lake_check_findings_and_completes(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    junk = lake / "events" / "event_date=2026-11-10" / "junk.parquet"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(os.urandom(1024))
    config = tmp_path / "keytrail.toml"
    config.write_text("[baseline]\nwindow_days = 7\n")
    process = keytrail_process(
        "run", "--source", SAMPLES, "--lake", lake, "--date", LAST_DAY,
        "--ingest-from", FIRST_DAY, "--config", config, "--json",
        env={"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"},
    )  # fmt: skip
    out, err = process.communicate()
    assert process.returncode == 0, err
    result = json.loads(out)
    check = result["lake_check"]
    assert check["clean"] is False
    assert check["finding_counts"] == {"unreadable_file": 1}
    assert check["findings"][0]["path"] == "events/event_date=2026-11-10/junk.parquet"
    assert check["events"] == result["ingest"]["events_written"]
    assert result["days"][0]["date"] == LAST_DAY


def test_the_run_summary_lists_the_findings() -> None:
    finding = {"kind": "missing_events", "path": "events/event_date=2026-11-10",
               "detail": "an event file was deleted"}  # fmt: skip
    lines = lake_check_markdown(
        LakeCheckOutcome(clean=False, finding_counts={"missing_events": 1}, findings=(finding,),
                         days=14, event_files=14, events=17106,
                         quarantine={"objects": 2, "records": 3})
    )  # fmt: skip
    text = "\n".join(lines)
    assert "## Lake check" in text and "verdict: 1 missing\\_events" in text
    assert "event\\_date=2026-11-10" in text and "quarantined: 2 object(s), 3 record(s)" in text
    assert lake_check_markdown(LakeCheckOutcome(clean=True))[2] == "- verdict: clean"
