"""The run's summary for people watching the orchestrator: Markdown and flat table rows.

The nightly and backfill flows publish these as Prefect artifacts; the text is built here, from
the stage results, so the flows only hand it over. Every value that came from a record is
untrusted: :func:`md` makes it inert Markdown on one line, and the table rows cut it short and
drop control characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analytics.lake import schema as s
from analytics.run import warming_lines

if TYPE_CHECKING:
    import polars as pl

    from analytics.ingest.pipeline import IngestSummary
    from analytics.run import DayOutcome, LakeCheckOutcome


def md(text: object) -> str:
    """Untrusted text for Markdown: no markup, no HTML, no table breaks, one line."""
    value = "".join(ch if ch.isprintable() else " " for ch in str(text))
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        value = value.replace(char, escaped)
    for char in "\\`*_{}[]()#+!|~":
        value = value.replace(char, "\\" + char)
    return value


def ingest_markdown(summary: IngestSummary | None) -> list[str]:
    if summary is None:
        return []
    lines = [
        "## Ingest",
        "",
        "| | |",
        "|---|---:|",
        f"| log objects listed | {summary.objects_seen:,} |",
        f"| read | {summary.objects_ingested:,} |",
        f"| already in the lake | {summary.objects_skipped:,} |",
        f"| quarantined objects | {summary.objects_quarantined:,} |",
        f"| quarantined records | {summary.records_quarantined:,} |",
        f"| events written | {summary.events_written:,} |",
        f"| duplicate events dropped | {summary.duplicate_events_dropped:,} |",
        f"| eventID clashes quarantined | {summary.event_id_clashes:,} |",
        f"| seconds | {summary.seconds} |",
        "",
    ]
    for line in [*summary.quarantined[:20], *summary.clashes[:20]]:
        lines.append(f"- quarantined: {md(line)}")
    return lines


def lake_check_markdown(result: LakeCheckOutcome | None) -> list[str]:
    if result is None:
        return []
    if result.error is not None:
        return ["## Lake check", "", f"Could not run: {md(result.error)}", ""]
    counts = result.finding_counts
    verdict = "clean" if not counts else ", ".join(f"{n} {md(k)}" for k, n in counts.items())
    quarantine = result.quarantine
    lines = [
        "## Lake check",
        "",
        f"- verdict: {verdict}",
        f"- {result.days:,} day(s), {result.event_files:,} event file(s), {result.events:,} events",
        f"- quarantined: {quarantine.get('objects', 0):,} object(s), "
        f"{quarantine.get('records', 0):,} record(s)",
    ]
    for finding in result.findings[:20]:
        lines.append(f"- {md(finding['kind'])}: {md(finding['path'])}: {md(finding['detail'])}")
    return [*lines, ""]


def _severity_counts(counts: Mapping[str, int]) -> str:
    """``2 high, 1 critical`` from a count per severity, zeros left out."""
    shown = [f"{count} {md(name)}" for name, count in counts.items() if count]
    return ", ".join(shown) or "none"


def incidents_markdown(outcome: DayOutcome) -> list[str]:
    """The day's incidents as a Markdown table, before anything else about the day."""
    rows = outcome.incident_rows
    if not rows:
        return []
    lines = [
        "| severity | incident | alerts | actors | keys | first seen |",
        "|---|---|---:|---|---|---|",
    ]
    lines += [
        f"| {md(row['severity'])} | {md(row['title'])} | {row['alerts']} | {md(row['actors'])} "
        f"| {md(row['keys'])} | {md(row['first_seen'])} |"
        for row in rows
    ]
    return [*lines, ""]


def day_markdown(outcome: DayOutcome) -> list[str]:
    state = "unchanged since the last run (skipped)" if outcome.skipped else "scored"
    lines = [
        f"## {outcome.date}: {outcome.alerts} alert(s) — {state}",
        "",
        f"- incidents: {outcome.incident_count} "
        f"({_severity_counts(outcome.incidents_by_severity)}); to triage: {outcome.to_triage}",
        "",
        *incidents_markdown(outcome),
        f"- suppressed: {outcome.suppressed}; events scored: {outcome.events_scored:,}; "
        f"history: {outcome.history_days} day(s)",
        f"- alerts by severity: {_severity_counts(outcome.alerts_by_severity)}",
        f"- report: `{md(outcome.report_html)}`",
    ]
    if outcome.model_note:
        lines.append(f"- model: {md(outcome.model_note)}")
    lines += [f"- {line}" for line in warming_lines(outcome.warming_up, md)]
    for export in outcome.exports:
        lines.append(
            f"- export {md(export.get('sink'))} → {md(export.get('destination'))}: sent "
            f"{export.get('sent', 0)}, already sent {export.get('already_sent', 0)}"
        )
    return [*lines, ""]


def run_markdown(
    title: str,
    ingest: IngestSummary | None,
    days: Sequence[DayOutcome],
    error: str | None = None,
    lake_check: LakeCheckOutcome | None = None,
) -> str:
    """The whole run in Markdown: failure first, then ingest, the lake check and each day."""
    lines = [f"# {md(title)}", ""]
    if error:
        lines += [f"**Failed:** {md(error)}", ""]
    lines += ingest_markdown(ingest)
    lines += lake_check_markdown(lake_check)
    for outcome in days:
        lines += day_markdown(outcome)
    return "\n".join(lines)


def incident_table(days: Sequence[DayOutcome]) -> list[dict[str, Any]]:
    """The run's incidents table: every day's rows, or one row per day saying it had none (an
    empty table would leave the artifact's history without this run)."""
    rows = [row for outcome in days for row in outcome.incident_rows]
    return rows or [{"date": d.date.isoformat(), "incidents": 0} for d in days]


def alert_table(days: Sequence[DayOutcome]) -> list[dict[str, Any]]:
    """The run's alerts table, as :func:`incident_table`."""
    rows = [row for outcome in days for row in outcome.alert_rows]
    return rows or [{"date": d.date.isoformat(), "alerts": 0} for d in days]


def incident_rows(incidents: pl.DataFrame, limit: int = 100) -> list[dict[str, Any]]:
    """Incidents as rows for the Prefect table artifact: one flat row each, lists as text."""
    from analytics.detect.incidents import short_arn

    def shortened(values: list[str] | None) -> str:
        return _short(", ".join(short_arn(v) for v in values or []))

    return [
        {
            "date": str(incident[s.EVENT_DATE]),
            "severity": incident[s.SEVERITY],
            "title": _short(incident[s.TITLE], 300),
            "alerts": incident[s.ALERT_COUNT],
            "actors": shortened(incident[s.ACTORS]),
            "keys": shortened(incident[s.KEY_ARNS]),
            "tactics": _short(" → ".join(incident[s.TACTICS] or [])),
            "first_seen": str(incident[s.FIRST_SEEN]),
            "last_seen": str(incident[s.LAST_SEEN]),
            "severity_raised_because": _short(incident[s.SEVERITY_RAISED_BECAUSE] or ""),
            "incident_id": incident[s.INCIDENT_ID],
        }
        for incident in incidents.head(limit).iter_rows(named=True)
    ]


def alert_rows(alerts: pl.DataFrame, limit: int = 200) -> list[dict[str, Any]]:
    """Active alerts as rows for the Prefect table artifact (untrusted text cut short)."""
    import polars as pl

    active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null())
    rows = []
    for alert in active.head(limit).iter_rows(named=True):
        rows.append(
            {
                "date": str(alert[s.EVENT_DATE]),
                "incident_id": alert.get(s.INCIDENT_ID) or "",
                "severity": alert[s.SEVERITY],
                "detector": alert[s.DETECTOR],
                "actor": _short(alert.get(s.ACTOR)),
                "key_arn": _short(alert.get(s.KEY_ARN)),
                "reason": _short(alert.get(s.REASON), 300),
                "alert_id": alert[s.ALERT_ID],
            }
        )
    return rows


def _short(value: object, limit: int = 160) -> str:
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
