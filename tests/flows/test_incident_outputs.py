"""Incidents in what a run leaves behind: the end-of-run lines and the Prefect artifacts.

The rendering pieces are tested on hand-made incidents (they take plain values); one nightly run
over the sample's last days checks them wired together, against Prefect's local test API.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from analytics.adapters.lake import LocalLake
from analytics.detect import incidents
from analytics.lake import schema as s
from analytics.publish.reports.run_summary import alert_rows, day_markdown, incident_rows
from analytics.run import DayOutcome, top_incidents
from flows.cli_incidents import print_incidents
from flows.cli_orchestrate import print_result
from tests.detect.alert_frames import DAY, alert, at, frame, key, role
from tests.flows.conftest import LAST_DAY, copy_days
from tests.flows.helpers import invoke

HOSTILE = "[bold red]pwned[/]\x1b[2J|*"


@pytest.fixture
def grouped() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two incidents (one with a hostile actor name) and an alert that stands alone."""
    actor = role(HOSTILE)
    alerts = frame([
        alert("a1", "KMS.KeyPolicyChanged", at(10), actor=role("admin"), key_arn=key("k1"),
              severity="high"),
        alert("a2", "KMS.NewCrossAccountCaller", at(12), actor=role("x", "999988887777"),
              key_arn=key("k1"), severity="high"),
        alert("b1", "KMS.UnusualKeyUsage", at(3), actor=actor, key_arn=key("k2"),
              title=f"Unusual {HOSTILE}"),
        alert("b2", "KMS.UnusualKeyUsage", at(4), actor=actor, key_arn=key("k3")),
        alert("c1", "KMS.RootKmsUsage", at(20), actor="root:111122223333"),
    ])  # fmt: skip
    grouping = incidents.group(alerts, frame([]), DAY)
    return grouping.incidents, incidents.label_alerts(alerts, grouping)


def _printed(render: object) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, width=400, color_system=None)
    assert callable(render)
    render(out)
    return buffer.getvalue()


def test_terminal_incidents_show_record_text_as_text(
    grouped: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    found, _ = grouped
    text = _printed(lambda out: print_incidents(out, found, "raised"))
    assert "[bold red]pwned[/]\\x1b[2J|*" in text
    assert "\x1b" not in text
    first = found.row(0, named=True)
    assert text.splitlines()[0].startswith("I1   CRITICAL")
    assert "severity raised: the key was opened to outsiders" in text
    assert f"incident {first['incident_id'][:12]}" in text


def test_the_end_of_a_run_names_the_incident_count_and_each_top_incident(
    grouped: tuple[pl.DataFrame, pl.DataFrame], capsys: pytest.CaptureFixture[str]
) -> None:
    found, labelled = grouped
    day = {"date": str(DAY), "alerts": labelled.height, "suppressed": 0,
           "incident_count": found.height, "to_triage": found.height + 1,
           "top_incidents": top_incidents(found)}  # fmt: skip
    print_result({"days": [day]})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{DAY}: 5 alert(s) in 2 incident(s), 3 to triage, 0 suppressed"
    assert [line.split(":")[0] for line in lines[1:3]] == ["  incident", "  incident"]
    assert lines[1].startswith("  incident: CRITICAL ") and lines[1].endswith("(2 alerts)")
    assert "\\[bold red]" not in lines[2] and "[bold red]pwned[/]" in lines[2]
    assert "\x1b" not in "".join(lines)


def test_the_artifacts_list_incidents_first_as_a_table(
    grouped: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    found, labelled = grouped
    rows = incident_rows(found)
    assert [row["alerts"] for row in rows] == [2, 2]
    assert all(isinstance(value, str | int) for row in rows for value in row.values())
    assert rows[0]["keys"] == "key/k1"
    outcome = DayOutcome(DAY, alerts=5, incident_count=2, to_triage=3,
                         incidents_by_severity={"high": 0, "critical": 1, "medium": 1},
                         alerts_by_severity={"high": 2, "medium": 2},
                         incident_rows=tuple(rows), alert_rows=tuple(alert_rows(labelled)))  # fmt: skip
    markdown = day_markdown(outcome)
    table = markdown.index("| severity | incident | alerts | actors | keys | first seen |")
    assert table < next(i for i, line in enumerate(markdown) if line.startswith("- suppressed"))
    assert "- incidents: 2 (1 critical, 1 medium); to triage: 3" in markdown
    assert "- alerts by severity: 2 high, 2 medium" in markdown
    hostile_row = markdown[table + 3]
    assert "\\[bold red\\]pwned\\[/\\]" in hostile_row and "\\|\\*" in hostile_row
    assert [row["incident_id"] for row in outcome.alert_rows].count("") == 1
    result = outcome.to_dict()
    assert "incident_rows" not in result and "alert_rows" not in result
    assert {row[s.ALERT_ID] for row in outcome.alert_rows} == set(labelled[s.ALERT_ID])


@pytest.mark.xdist_group("prefect")
@pytest.mark.usefixtures("prefect_api")
def test_a_nightly_run_names_its_incidents_and_leaves_them_as_a_table_artifact(
    tmp_path: Path, short_window: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from analytics.detect.scoring import read_incidents

    def incident_tables() -> dict[object, object]:
        """The incidents tables on the session's Prefect API, newest first, by artifact ID."""
        key = ArtifactFilterKey(any_=["keytrail-nightly-incidents"])
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=key), sort=ArtifactSort.CREATED_DESC, limit=50
            )
        return {a.id: a.data for a in found}

    before = set(incident_tables())  # the session's Prefect API holds other tests' runs too
    tree = copy_days(["2026-11-13", "2026-11-14", "2026-11-15"], tmp_path / "trail")
    lake = tmp_path / "lake"
    result = invoke("run", "--source", tree, "--lake", lake, "--date", LAST_DAY,
                    "--ingest-from", "2026-11-13", "--config", short_window)  # fmt: skip
    assert result.exit_code == 0, result.output
    written = read_incidents(LocalLake(lake), dt.date.fromisoformat(LAST_DAY))
    assert written.height >= 1
    record = json.loads((lake / "_state" / "days" / f"{LAST_DAY}.json").read_text())
    assert record["incident_count"] == written.height
    assert [i["incident_id"] for i in record["top_incidents"]] == written.get_column(
        s.INCIDENT_ID
    ).to_list()[:5]
    lines = result.stdout.splitlines()
    day_line = next(i for i, line in enumerate(lines) if line.startswith(f"{LAST_DAY}: "))
    assert f"in {written.height} incident(s)" in lines[day_line]
    for offset, incident in enumerate(record["top_incidents"], start=1):
        assert lines[day_line + offset].startswith(f"  incident: {incident['severity'].upper()}")
    tables = [data for key, data in incident_tables().items() if key not in before]
    assert len(tables) == 1, tables  # this run's, whatever other tests left on the API
    rows = json.loads(tables[0]) if isinstance(tables[0], str) else tables[0]
    assert isinstance(rows, list)
    assert {row["incident_id"] for row in rows} >= set(written.get_column(s.INCIDENT_ID))
