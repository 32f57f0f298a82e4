"""``keytrail demo``: which days it scores (read from the lake), a report for each, and the
closing summary it ends on — its day lines, incident lines and next steps that exist.

One demo run over the embedded sample, against Prefect's local test API; the span rule and the
incident line on their own, on the session's sample lake and on hand-made incidents.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
from pathlib import Path

import pytest

from analytics import api
from analytics.adapters.lake import LocalLake
from analytics.detect import incidents
from analytics.detect.scoring import scored_days
from analytics.publish.export import default_ocsf_path
from analytics.run import read_record
from flows import demo
from flows.cli_incidents import one_line
from tests.detect.alert_frames import DAY, alert, at, frame, key, role
from tests.flows.conftest import REPO, SAMPLES

LAST = dt.date(2026, 11, 14)
SPAN = [dt.date(2026, 11, d) for d in (11, 12, 13, 14)]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> tuple[Path, list[str], str]:
    """The demo over the sample into a fresh lake: the lake, the summary's lines as returned,
    and everything it printed on stdout."""
    lake = tmp_path_factory.mktemp("demo") / "demo-lake"
    capture = pytest.MonkeyPatch()
    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    try:
        lines = demo.run_demo(lake, SAMPLES, days=4, ephemeral=False)
    finally:
        capture.undo()
    return lake, lines, ANSI.sub("", out.getvalue())


@pytest.mark.xdist_group("prefect")
def test_the_demo_scores_the_last_four_days_each_with_its_report(
    demo_run: tuple[Path, list[str], str],
) -> None:
    lake, _, _ = demo_run
    assert scored_days(LocalLake(lake)) == list(SPAN)
    for day in SPAN:
        record = read_record(LocalLake(lake), day)
        assert record is not None and record.history_days >= 7
        assert (lake / "reports" / day.isoformat() / "report.html").is_file()
        assert default_ocsf_path(LocalLake(lake), day).is_file()
    assert not (lake / "reports" / "2026-11-10").exists()


@pytest.mark.xdist_group("prefect")
def test_the_demo_ends_on_its_summary_with_a_line_per_day_and_per_incident(
    demo_run: tuple[Path, list[str], str],
) -> None:
    lake, lines, printed = demo_run
    shown = printed.rstrip("\n").splitlines()
    summary = demo.rendered(lines).rstrip("\n").splitlines()
    assert shown[-len(summary) :] == summary  # the last thing printed
    assert len(summary) <= 25  # 80 columns: lines naming this long temporary lake aside
    assert max(len(line) for line in summary if str(lake) not in line) <= demo.WIDTH
    for day in SPAN:
        record = read_record(LocalLake(lake), day)
        assert record is not None
        (line,) = [x for x in summary if x.startswith(f"  {day} ")]
        counts = [int(n) for n in re.findall(r"(\d+) (?:alerts?|incidents?|to triage)", line)]
        assert counts == [record.alerts, record.incident_count, record.to_triage]
    found = api.incidents(api.open_lake(lake), SPAN[0], SPAN[-1])
    assert found.height >= 4
    incident_lines = [x for x in summary if re.match(r"    (CRITICAL|HIGH|MEDIUM|LOW|INFO) ", x)]
    assert len(incident_lines) == found.height
    for row in found.iter_rows(named=True):
        assert f"    {one_line(row, demo.WIDTH - 4)}" in summary


@pytest.mark.xdist_group("prefect")
def test_the_next_steps_point_at_things_that_exist(demo_run: tuple[Path, list[str], str]) -> None:
    lake, lines, _ = demo_run
    summary = demo.rendered(lines)
    steps = summary.split("Next (in the virtualenv: . .venv/bin/activate):\n", 1)[1]
    report = lake / "reports" / "2026-11-14" / "report.html"
    assert f"     {report}\n" in steps and report.is_file()
    (notebook,) = re.findall(r"jupyter lab (\S+)", steps)
    assert (REPO / notebook).is_file()
    assert f"KEYTRAIL_LAKE={lake.resolve()} jupyter lab" in steps  # not the default lake
    assert f"     {demo.OWN_TRAIL}\n" in steps
    readme = (REPO / "README.md").read_text("utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert f"```sh\n{demo.OWN_TRAIL}\n```" in quick_start


def test_the_span_is_the_last_days_with_events_and_enough_history(
    sample_lake: LocalLake,
) -> None:
    assert demo.scored_span(sample_lake, LAST, 4) == demo.Span(SPAN, [])
    assert demo.scored_span(sample_lake, dt.date(2026, 11, 12), 2).days == SPAN[:2]
    # Day 8 has 7 days of history (the model's minimum); days 1..7 have fewer.
    wide = demo.scored_span(sample_lake, LAST, 30)
    assert wide.days == [dt.date(2026, 11, d) for d in range(8, 15)]
    assert wide.too_early == [dt.date(2026, 11, d) for d in range(1, 8)]
    # The last day is scored by the nightly run whatever its history, so it is always shown.
    assert demo.scored_span(sample_lake, dt.date(2026, 11, 3), 4) == demo.Span(
        [dt.date(2026, 11, 3)], [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
    )


def test_an_incident_line_is_short_and_shows_record_text_as_text() -> None:
    actor = role("ops/evil\x1b[2J[blink]")
    alerts = frame([
        alert("a1", "KMS.KeyDisabledOrScheduledForDeletion", at(10), actor=actor,
              key_arn=key("k1"), severity="critical", title="Key disabled [bold red]x[/]"),
        alert("a2", "KMS.UnusualKeyUsage", at(11), actor=actor, key_arn=key("k2"),
              severity="high"),
    ])  # fmt: skip
    found = incidents.group(alerts, frame([]), DAY).incidents
    (row,) = found.iter_rows(named=True)
    full = demo.rendered([one_line(row, 200)]).rstrip("\n")
    assert full == "CRITICAL Key disabled [bold red]x[/]: evil\\x1b[2J[blink] across 2 keys"
    assert "\x1b" not in one_line(row, 200)  # the escape is shown, never sent
    short = demo.rendered([one_line(row, 40)]).rstrip("\n")
    assert len(short) == 40 and short.endswith("…") and full.startswith(short[:-1])
    assert one_line(row).endswith("(2 alerts)")  # keytrail run's form is unchanged


def test_a_lake_with_too_little_history_says_so_instead_of_a_summary(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    span = demo.scored_span(lake, LAST, 4)
    assert span == demo.Span([], [])
    (line,) = demo.summary_lines(lake, span, "lake")
    assert "enough history" in line
