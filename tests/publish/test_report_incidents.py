"""The reports open with the day's incidents: each with its timeline and its alerts beneath."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import polars as pl
import pyarrow as pa

from analytics.lake import schema as s
from analytics.publish.reports import html, markdown
from tests.publish.conftest import BuiltReport

HOSTILE = '<img src=x onerror="alert(1)">|`x`*[y](http://e)'


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start : page.index("</section>", start)]


def test_html_opens_with_the_incidents_and_their_timelines(fixture_report: BuiltReport) -> None:
    page = fixture_report.files["report.html"].read_text("utf-8")
    report = fixture_report.report
    incident = report.incidents.row(0, named=True)
    assert page.index('<section id="incidents">') < page.index('<section id="alerts">')
    assert page.index('<section id="headline">') < page.index('<section id="incidents">')
    section = _section(page, "incidents")
    assert f'id="incident-{incident["incident_id"]}"' in section
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', section)
    assert timeline is not None
    entries = re.findall(r"<li>(.*?)</li>", timeline.group(1))
    assert len(entries) == incident["alert_count"] == len(incident["timeline"])
    for entry, expected in zip(entries, incident["timeline"], strict=True):
        assert expected["detector"] in entry
        assert f"{expected['evidence_count']:,} evidence event(s)" in entry
        assert f"<time>{expected['time']:%Y-%m-%d %H:%M} UTC</time>" in entry
    members = report.alerts_of(incident["incident_id"]).get_column("alert_id").to_list()
    assert members and all(f'href="#alert-{a}"' in section for a in members)


def test_html_lists_only_the_alerts_outside_incidents_before_the_other_sections(
    fixture_report: BuiltReport,
) -> None:
    page = fixture_report.files["report.html"].read_text("utf-8")
    report = fixture_report.report
    alone = report.lone_alerts.get_column("alert_id").to_list()
    grouped = report.active_alerts.filter(pl.col("incident_id").is_not_null())
    section = _section(page, "alerts")
    assert f"Alerts outside any incident ({len(alone)} of {report.active_alerts.height})" in section
    assert all(f'href="#alert-{a}"' in section for a in alone)
    assert not any(f'href="#alert-{a}"' in section for a in grouped.get_column("alert_id"))
    details = _section(page, "details")
    assert details.count('<article class="alert') == report.active_alerts.height
    assert details.count('<a href="#incident-') == grouped.height
    assert "<script" not in page.lower()


def test_markdown_opens_with_the_incidents_and_their_alerts_beneath(
    fixture_report: BuiltReport,
) -> None:
    text = fixture_report.files["report.md"].read_text("utf-8")
    report = fixture_report.report
    incident = report.incidents.row(0, named=True)
    start = text.index("## Incidents (1)")
    end = text.index("## Alerts outside any incident (1 of 5)")
    assert text.index("## Headline") < start < end < text.index("## Key usage")
    block = text[start:end]
    assert "| time | severity | what happened | detector | evidence |" in block
    for entry in incident["timeline"]:
        assert f"| {entry['detector']} | {entry['evidence_count']:,} |" in block
    for alert_id in report.alerts_of(incident["incident_id"]).get_column("alert_id"):
        assert f"- **Alert ID:** {alert_id}" in block
    for alert_id in report.lone_alerts.get_column("alert_id"):
        assert f"- **Alert ID:** {alert_id}" in text[end:]


def test_summary_json_and_the_headline_count_the_incidents(fixture_report: BuiltReport) -> None:
    summary = json.loads(fixture_report.files["summary.json"].read_text("utf-8"))
    report = fixture_report.report
    assert summary["incident_count"] == report.incidents.height == len(summary["incidents"]) == 1
    assert summary["alerts_outside_incidents"] == report.lone_alerts.height
    first = summary["incidents"][0]
    assert first["incident_id"] == report.incidents.item(0, "incident_id")
    assert first["alert_ids"] == report.incidents.item(0, "alert_ids").to_list()
    assert dt.datetime.fromisoformat(first["timeline"][0]["time"]).tzinfo is not None
    assert sum(summary["incidents_by_severity"].values()) == 1
    headline = _section(fixture_report.files["report.html"].read_text("utf-8"), "headline")
    assert '<div class="value">1</div><div>incidents</div>' in headline


def _hostile(report: BuiltReport) -> pl.DataFrame:
    frame = report.report.incidents
    entry = frame.item(0, "timeline")[0]
    table = frame.with_columns(
        pl.lit(f"title {HOSTILE}").alias(s.TITLE),
        pl.lit(f"summary {HOSTILE}\nsecond line").alias(s.SUMMARY),
        pl.lit(f"raised {HOSTILE}").alias(s.SEVERITY_RAISED_BECAUSE),
        pl.lit([f"role/{HOSTILE}"]).alias(s.ACTORS),
    ).to_arrow()
    timeline = [[{**entry, "what": f"what {HOSTILE}", "detector": f"KMS. {HOSTILE}"}]]
    index = table.schema.get_field_index(s.TIMELINE)
    table = table.set_column(index, s.TIMELINE, pa.array(timeline, pa.list_(s.TIMELINE_STRUCT)))
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def test_record_text_in_an_incident_is_shown_as_text(fixture_report: BuiltReport) -> None:
    report = dataclasses.replace(fixture_report.report, incidents=_hostile(fixture_report))
    page = html.render(report)
    assert "<img" not in page and 'onerror="' not in page
    section = _section(page, "incidents")
    for where in ("title", "summary", "raised", "what", "KMS."):
        assert f"{where} &lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in section, where
    text = markdown.render(report)
    assert re.search(r"(?<!\\)<img", text) is None  # every < is backslash-escaped
    block = text[text.index("## Incidents") : text.index("## Alerts outside")]
    escaped = r'\<img src=x onerror="alert(1)"\>\|\`x\`\*\[y\](http\://e)'
    for where in ("title", "summary", "raised", "what", "KMS."):
        assert f"{where} {escaped}" in block, where
    assert "summary" in block and "\nsecond line" not in block
    for table in block.split("\n\n"):  # every row keeps its table's column count
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in rows}) <= 1, table
