"""``report.html``: the day's report as one self-contained page.

It must open from a laptop's disk or an e-mail attachment with no network: no scripts, no web
fonts, no fetched images — CSS inline, charts inline SVG. A Content-Security-Policy of
``default-src 'none'`` makes that a promise the browser enforces: even if a value slipped past
escaping, nothing could load or run.

Every value that came from a record (ARNs, actors, user agents, reasons built from them) is passed
through :func:`html.escape` after formatting; the only markup in the page is written by this
module. A user agent of ``<script>alert(1)</script>`` is shown as exactly that text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

import polars as pl

from analytics.detect.bands import hours_above
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports import text as t
from analytics.publish.reports.daily import FINDINGS, DailyReport
from analytics.publish.reports.svg import HourPoint, Marker, hourly_chart

MAX_TABLE_ROWS = 50
EVIDENCE_AGENT_CHARS = 120
"""User agents in evidence tables are cut here (whole in the tooltip and in the OCSF export):
an SDK's agent string runs to hundreds of characters and made every evidence row tall."""

_CSS = """
:root { color-scheme: light; --ink: #1d2433; --muted: #5b6475; --line: #d9dee7; --bg: #f6f7f9;
  --critical: #8e1b1b; --high: #c0392b; --medium: #b9770e; --low: #2e6da4; --info: #5b6475; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header, main, footer { max-width: 1400px; margin: 0 auto; padding: 0 24px;
  overflow-wrap: anywhere; }
header { padding-top: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 12px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
.meta, .muted, figcaption { color: var(--muted); }
nav a { margin-right: 14px; color: var(--low); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
.card .value { font-size: 22px; font-weight: 600; }
.card.warn .value { color: var(--high); }
.findings { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
  gap: 10px; margin-top: 10px; }
.card.finding { border-left: 6px solid var(--high); }
.card.finding h3 { margin: 0; } .card.finding ul { margin: 4px 0 0; padding-left: 18px; }
article.alert { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--info);
  border-radius: 6px; padding: 12px 16px; margin: 0 0 14px; }
article.sev-critical { border-left-color: var(--critical); }
article.sev-high { border-left-color: var(--high); }
article.sev-medium { border-left-color: var(--medium); }
article.sev-low { border-left-color: var(--low); }
.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .04em;
  padding: 1px 7px; border-radius: 10px; color: #fff; background: var(--info);
  text-transform: uppercase; vertical-align: middle; white-space: nowrap; }
.badge.critical { background: var(--critical); } .badge.high { background: var(--high); }
.badge.medium { background: var(--medium); } .badge.low { background: var(--low); }
.badge.OVERDUE, .badge.DISABLED { background: var(--high); }
.badge.UNKNOWN { background: var(--medium); } .badge.ENABLED { background: #2e7d32; }
.reason { font-size: 15px; margin: 6px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
@media (min-width: 1000px) { dl.facts { grid-template-columns: max-content minmax(0, 1fr)
  max-content minmax(0, 1fr); } }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px;
  margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: #eef1f5; font-weight: 600; overflow-wrap: normal; }
td.num { text-align: right; white-space: nowrap; }
td.num .muted { white-space: normal; }
td.nowrap { white-space: nowrap; overflow-wrap: normal; }
@media (max-width: 999px) { td.nowrap { white-space: normal; overflow-wrap: anywhere; } }
td.keycol { min-width: 9.5em; }
span.key { border-bottom: 1px dotted var(--muted); }
.arn { font-size: 12px; font-weight: 400; }
#alerts td:nth-child(2), #incidents td:nth-child(2) { min-width: 9em; }
#alerts td:nth-child(4), #incidents td:nth-child(4) { min-width: 10em; }
#alerts td:nth-child(5), #incidents td:nth-child(5) { width: 45%; }
pre { white-space: pre-wrap; background: #f0f2f5; padding: 8px; border-radius: 4px; }
figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 0 0 14px;
  padding: 10px; }
svg.chart { width: 100%; max-width: 1100px; height: auto; }
svg .band { fill: #cfe3f7; } svg .bar { fill: #7a869a; } svg .bar.over { fill: #e0a030; }
svg .bar.alerted { fill: #c0392b; }
svg .marker line { stroke: #6a1b9a; stroke-width: 2; }
svg .marker text { fill: #6a1b9a; font-size: 12px; font-weight: 700; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 2px 16px; padding: 0;
  margin: 4px 0; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
  vertical-align: -1px; }
.swatch.bar { background: #7a869a; } .swatch.over { background: #e0a030; }
.swatch.alerted { background: #c0392b; } .swatch.band { background: #cfe3f7; }
.swatch.marker { width: 3px; background: #6a1b9a; }
ol.markers { margin: 4px 0; padding-left: 22px; font-size: 13px; }
ol.markers li::marker { color: #6a1b9a; font-weight: 700; }
svg .median { fill: none; stroke: #2e6da4; stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .grid { stroke: #e3e7ee; } svg .axis { font-size: 11px; fill: #5b6475; }
article.incident { background: #fff; border: 1px solid var(--line); border-left: 6px solid
  var(--info); border-radius: 6px; padding: 12px 16px; margin: 0 0 14px; }
article.incident.sev-critical { border-left-color: var(--critical); }
article.incident.sev-high { border-left-color: var(--high); }
article.incident.sev-medium { border-left-color: var(--medium); }
article.incident.sev-low { border-left-color: var(--low); }
ol.timeline { list-style: none; margin: 6px 0 10px; padding: 0 0 0 14px;
  border-left: 2px solid var(--line); }
ol.timeline li { margin: 0 0 6px; padding-left: 8px; }
ol.timeline time { font-variant-numeric: tabular-nums; white-space: nowrap; font-weight: 600; }
ol.timeline .what { overflow-wrap: anywhere; }
footer { color: var(--muted); padding: 24px; font-size: 12px; }
"""


def h(value: Any, limit: int = t.DISPLAY_LIMIT) -> str:
    """Display text of a record value, escaped for HTML."""
    return escape(t.clean(value, limit), quote=True)


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[int] = (),
    nowrap: Sequence[int] = (),
    key: Sequence[int] = (),
) -> str:
    """A table from already-escaped cells that fits its container: ``numeric`` columns are
    right-aligned, ``nowrap`` columns (badges, short names) stay on one line, ``key`` columns
    are wide enough for a key label; every other cell wraps anywhere rather than widen the
    table past the page."""

    def td(index: int, content: str) -> str:
        if index in numeric:
            return f'<td class="num">{content}</td>'
        if index in nowrap:
            return f'<td class="nowrap">{content}</td>'
        if index in key:
            return f'<td class="keycol">{content}</td>'
        return f"<td>{content}</td>"

    head = "".join(f"<th>{escape(name)}</th>" for name in headers)
    body = []
    for row in rows:
        cells = "".join(td(i, c) for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _short(arn: Any, aliases: Sequence[str] | None = None) -> str:
    """An ARN as ``<account> <resource>`` (the full text in a tooltip), for summary tables where
    the partition, service and region only repeat themselves. Any other value is shown whole,
    in the same markup: what a record holds must not change the page's structure."""
    if not isinstance(arn, str) or not arn.startswith("arn:") or arn.count(":") < 5:
        return f'<span title="{h(arn, 2000)}">{h(arn)}</span>'
    parts = arn.split(":", 5)
    label = f"{parts[4]} {parts[5]}".strip()
    alias = f'<br><span class="muted">{h(t.listed(aliases))}</span>' if aliases else ""
    return f'<span title="{h(arn, 2000)}">{h(label)}</span>{alias}'


def _key(key: Any, aliases: Sequence[str] | None = None) -> str:
    """A key by its label (:func:`analytics.publish.reports.text.key_label`); the full ARN and
    aliases are its tooltip, and the key legend at the end lists them for reading without a
    mouse."""
    label = escape(t.key_label(key, aliases))
    full = t.clean(key, 2000) + (f" ({t.listed(aliases)})" if aliases else "")
    return f'<span class="key" title="{escape(full, quote=True)}">{label}</span>'


def _actors(text: str) -> str:
    """A list of principals, escaped, with IAM ARNs shortened to ``<account>:<resource>``."""
    return escape(t.short_arn(text), quote=True)


def _clipped(value: Any, limit: int) -> str:
    """A long value cut to ``limit`` characters in the cell, whole in its tooltip (the same
    markup either way: a value's length must not change the page's structure)."""
    text = t.clean(value)
    shown = text if len(text) <= limit else text[:limit] + "…"
    return f'<span title="{escape(text, quote=True)}">{escape(shown, quote=True)}</span>'


def _badge(label: str) -> str:
    """A coloured label; its CSS class is the label itself (severities, rotation statuses)."""
    return f'<span class="badge {escape(label)}">{escape(label)}</span>'


def _more(total: int, shown: int, file_name: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="muted">{total - shown:,} more in {escape(file_name)}.</p>'


def _findings(report: DailyReport) -> str:
    """A card per key finding that names keys (open to anyone, to outside accounts, pending
    deletion): the facts a lead must not have to dig out of the inventory."""
    cards = []
    for kind, title in FINDINGS.items():
        found = report.findings.get(kind) or []
        if not found:
            continue
        items = "".join(
            f"<li>{_key(f['key_arn'], report.aliases.get(f['key_arn']))}: {_actors(f['detail'])}"
            "</li>"
            for f in found
        )
        cards.append(
            f'<div class="card finding" id="finding-{escape(kind)}">'
            f"<h3>{escape(title)} ({len(found):,})</h3><ul>{items}</ul></div>"
        )
    return f'<div class="findings">{"".join(cards)}</div>' if cards else ""


def _headline(report: DailyReport) -> str:
    warn = {"alerts", "incident_count", "alerts_outside_incidents", "rotation_overdue",
            "keys_pending_deletion", "failed_changes", "event_id_clashes", "keys_open_to_anyone",
            "keys_open_to_outside_accounts"}  # fmt: skip
    cards = []
    for name, value in report.headline.items():
        css = "card warn" if name in warn and value else "card"
        cards.append(
            f'<div class="{css}"><div class="value">{escape(t.number(value))}</div>'
            f"<div>{escape(t.HEADLINE_LABELS.get(name, name))}</div></div>"
        )
    cards_html = "".join(cards)
    return (
        f'<section id="headline"><h2>Headline</h2><div class="cards">{cards_html}</div>'
        f"{_findings(report)}</section>"
    )


def _alert_rows(alerts: pl.DataFrame, aliases: dict[str, Any]) -> list[tuple[str, ...]]:
    """One line per alert, linked to its details below (most severe first)."""
    return [
        (
            _badge(a[s.SEVERITY]),
            f'<a href="#alert-{escape(a[s.ALERT_ID])}">{h(a[s.TITLE])}</a>',
            _key(a[s.KEY_ARN], aliases.get(a[s.KEY_ARN])),
            _short(a[s.ACTOR]),
            h(a[s.REASON], 600),
        )
        for a in alerts.iter_rows(named=True)
    ]


_ALERT_HEADERS = ("severity", "alert", "key", "actor", "reason")


def _timeline(incident: dict[str, Any], today: set[str]) -> str:
    """What happened, in order: time, severity, what, detector and evidence count. Entries of
    this day's alerts link to their details; earlier days' entries are in their own reports."""
    items = []
    for entry in incident[s.TIMELINE] or []:
        what = h(entry["what"], 600)
        if entry["alert_id"] in today:
            what = f'<a href="#alert-{escape(entry["alert_id"])}">{what}</a>'
        items.append(
            f"<li><time>{h(t.when(entry['time']))}</time> {_badge(str(entry['severity']))} "
            f'<span class="what">{what}</span> <span class="muted">— {h(entry["detector"])} · '
            f"{escape(t.number(entry['evidence_count']))} evidence event(s)</span></li>"
        )
    more = incident[s.ALERT_COUNT] - len(incident[s.TIMELINE] or [])
    if more > 0:
        items.append(f'<li class="muted">… and {more:,} more alert(s)</li>')
    return f'<ol class="timeline">{"".join(items)}</ol>'


def _incident(report: DailyReport, incident: dict[str, Any], aliases: dict[str, Any]) -> str:
    severity = str(incident[s.SEVERITY])
    dl = "".join(
        f"<dt>{escape(label)}</dt><dd>{h(value, 1000)}</dd>"
        for label, value in t.incident_facts(incident)
    )
    members = report.alerts_of(incident[s.INCIDENT_ID])
    today = set(members.get_column(s.ALERT_ID).to_list())
    alerts = (
        f"<h3>Its alerts of {report.day.isoformat()} ({members.height:,})</h3>"
        + _table(_ALERT_HEADERS, _alert_rows(members, aliases), nowrap=(0,), key=(2,))
        if members.height
        else ""
    )
    return (
        f'<article class="incident sev-{escape(severity)}" '
        f'id="incident-{escape(incident[s.INCIDENT_ID])}">'
        f"<h3>{_badge(severity)} {h(incident[s.TITLE], 600)}</h3>"
        f'<p class="reason">{h(incident[s.SUMMARY], 2000)}</p>'
        f'<dl class="facts">{dl}</dl><h3>Timeline</h3>{_timeline(incident, today)}{alerts}'
        "</article>"
    )


def _incidents(report: DailyReport) -> str:
    """The day's incidents, most severe first: what to triage, each with its timeline."""
    aliases = report.aliases
    parts = [f'<section id="incidents"><h2>Incidents ({report.incidents.height:,})</h2>']
    if report.incidents.is_empty():
        parts.append('<p class="muted">No incidents: no alerts of this day belong together.</p>')
    parts += [_incident(report, row, aliases) for row in report.incidents.iter_rows(named=True)]
    parts.append("</section>")
    return "".join(parts)


def _evidence_table(report: DailyReport, alert_id: str) -> str:
    rows = report.evidence.filter(pl.col(s.ALERT_ID) == alert_id)
    if rows.is_empty():
        return ""
    cells = [
        (
            h(t.when(e[s.EVENT_TIME], seconds=True)),
            h(e[s.EVENT_NAME]),
            _short(e[s.PRINCIPAL_ARN] or e[s.ACTOR]),
            h(e["source"]),
            _clipped(e[s.USER_AGENT], EVIDENCE_AGENT_CHARS),
            h(e[s.ERROR_CODE]),
            h(e[s.EVENT_ID]),
        )
        for e in rows.iter_rows(named=True)
    ]
    headers = ("time", "event", "principal", "source", "user agent", "error", "event ID")
    return "<h3>Evidence</h3>" + _table(headers, cells, nowrap=(1,))


def _alert(report: DailyReport, alert: dict[str, Any]) -> str:
    severity = str(alert[s.SEVERITY])
    facts = [
        ("Detector", alert[s.DETECTOR]),
        ("Window", t.window(alert[s.WINDOW_START], alert[s.WINDOW_END])),
        ("Key", alert[s.KEY_ARN]),
        ("Keys", t.related_keys(alert)),
        ("Actor", alert[s.ACTOR]),
        ("Via service", alert[s.INVOKED_BY]),
        (
            "Account / region",
            f"{alert[s.ACCOUNT_ID] or t.MISSING} / {alert[s.AWS_REGION] or t.MISSING}",
        ),
        ("Pattern", alert[s.OBSERVED_PATTERN]),
        ("Baseline", alert[s.BASELINE]),
        ("MITRE ATT&CK", t.listed(alert[s.MITRE])),
        ("Evidence events", t.number(alert[s.EVIDENCE_COUNT])),
        ("Alert ID", alert[s.ALERT_ID]),
    ]
    dl = "".join(f"<dt>{escape(label)}</dt><dd>{h(value)}</dd>" for label, value in facts
                 if value is not None)  # fmt: skip
    drivers = ""
    features = alert[s.TOP_FEATURES] or []
    if features:
        items = "".join(f"<li>{h(f.get('text') or f.get('name'))}</li>" for f in features)
        drivers = f"<h3>What drove it</h3><ul>{items}</ul>"
    runbook = ""
    if alert[s.RUNBOOK]:
        runbook = (
            f"<details><summary>Runbook</summary><pre>{h(alert[s.RUNBOOK], 4000)}</pre></details>"
        )
    part_of = ""
    if alert[s.INCIDENT_ID]:
        incident = escape(alert[s.INCIDENT_ID])
        part_of = (
            f'<p class="muted">Part of <a href="#incident-{incident}">incident '
            f"{escape(alert[s.INCIDENT_ID][:12])}</a>.</p>"
        )
    return (
        f'<article class="alert sev-{escape(severity)}" id="alert-{escape(alert[s.ALERT_ID])}">'
        f"<h3>{_badge(severity)} {h(alert[s.TITLE])}</h3>{part_of}"
        f'<p class="reason">{h(alert[s.REASON], 2000)}</p>'
        f'<dl class="facts">{dl}</dl>{drivers}{_evidence_table(report, alert[s.ALERT_ID])}{runbook}'
        "</article>"
    )


def _alerts(report: DailyReport) -> str:
    """Alerts outside any incident: one line each, most severe first, linked to their details."""
    active = report.active_alerts
    alone = report.lone_alerts
    aliases = report.aliases
    parts = [
        f'<section id="alerts"><h2>Alerts outside any incident ({alone.height:,} of '
        f"{active.height:,})</h2>"
    ]
    if active.is_empty():
        parts.append('<p class="muted">No alerts for this day.</p>')
    elif alone.is_empty():
        parts.append('<p class="muted">Every alert of this day is part of an incident.</p>')
    else:
        parts.append(_table(_ALERT_HEADERS, _alert_rows(alone, aliases), nowrap=(0,), key=(2,)))
    suppressed = report.alerts.filter(pl.col(s.SUPPRESSED_BY).is_not_null())
    if not suppressed.is_empty():
        rows = [
            (
                h(a[s.SEVERITY]),
                h(a[s.DETECTOR]),
                _key(a[s.KEY_ARN], aliases.get(a[s.KEY_ARN])),
                _short(a[s.ACTOR]),
                h(a[s.SUPPRESSED_BY]),
            )
            for a in suppressed.iter_rows(named=True)
        ]
        parts.append(f"<h3>Suppressed ({suppressed.height:,})</h3>")
        parts.append(
            _table(("severity", "detector", "key", "actor", "suppressed by"), rows, key=(2,))
        )
    parts.append("</section>")
    return "".join(parts)


def _alert_details(report: DailyReport) -> str:
    active = report.active_alerts
    if active.is_empty():
        return ""
    return (
        '<section id="details"><h2>Alert details</h2>'
        + "".join(_alert(report, row) for row in active.iter_rows(named=True))
        + "</section>"
    )


_LEGEND = (
    '<ul class="legend"><li><span class="swatch bar"></span>calls in the hour</li>'
    '<li><span class="swatch band"></span>usual range (10th–90th percentile)</li>'
    '<li><span class="swatch over"></span>above the usual range</li>'
    '<li><span class="swatch alerted"></span>hour of an alert on this key</li>'
    '<li><span class="swatch marker"></span>numbered: a change to the key (listed below)</li>'
    "</ul>"
)


def _chart_markers(report: DailyReport, key: str) -> list[tuple[Marker, dict[str, Any]]]:
    rows = report.markers.filter(pl.col(s.KEY_ARN) == key).iter_rows(named=True)
    return [
        (Marker(n, e[s.EVENT_TIME].hour, e[s.EVENT_TIME].minute,
                f"{t.when(e[s.EVENT_TIME])} {t.clean(e[s.EVENT_NAME], 80)} by "
                f"{t.short_arn(t.clean(e[s.ACTOR], 200))}"), e)
        for n, e in enumerate(rows, start=1)
    ]  # fmt: skip


def _charts(report: DailyReport) -> str:
    keys = list(dict.fromkeys(report.bands.get_column(s.KEY_ARN).to_list()))
    parts = ['<section id="charts"><h2>Alerted keys: hourly use against the usual range</h2>']
    if not keys:
        parts.append('<p class="muted">No alert names a key.</p>')
    aliases = report.aliases
    for key in keys:
        rows = report.bands.filter(pl.col(s.KEY_ARN) == key)
        points = [
            HourPoint(
                int(p["hour_of_day"]),
                int(p["calls"]),
                p["band_low"],
                p["band_median"],
                p["band_high"],
            )
            for p in rows.iter_rows(named=True)
        ]
        days = int(rows.select(pl.col("history_days").max()).item() or 0)
        above = hours_above(report.bands, key)
        caption = (
            f"Bars: calls per hour on {report.day.isoformat()} (UTC). Shaded: 10th–90th "
            f"percentile of the same hour over {days} day(s) of history; dashed line: median."
            if days
            else "No history before this day yet: no usual range to compare with."
        )
        if above:
            caption += " Above the usual range: " + ", ".join(
                f"{hour:02d}:00 ({calls:,} vs ≤{t.number(high)})"
                for hour, calls, _low, high in above
            )
        markers = _chart_markers(report, key)
        changes = "".join(f"<li>{_actors(m.text)}</li>" for m, _event in markers)
        listed = (
            f'<ol class="markers">{changes}</ol>'
            if markers
            else '<p class="muted">No change to the key on this day.</p>'
        )
        chart = hourly_chart(t.clean(key), points, [m for m, _e in markers],
                             report.alerted_hours(key))  # fmt: skip
        parts.append(
            f"<figure><h3>{_key(key, aliases.get(key))} "
            f'<span class="muted arn">{h(key)}</span></h3>{chart}'
            f"{_LEGEND}<figcaption>{escape(caption)}</figcaption>{listed}</figure>"
        )
    parts.append("</section>")
    return "".join(parts)


def _usage(report: DailyReport) -> str:
    usage = report.key_usage
    rows = [
        (
            _key(k[s.KEY_ARN], k[r.ALIASES]),
            h(t.number(k[r.CALLS])),
            h(t.number(k[r.ERRORS]))
            + (
                f'<br><span class="muted">{h(t.counted(k["errors_by_code"]))}</span>'
                if k["errors_by_code"]
                else ""
            ),
            h(t.counted(k["calls_by_operation"])),
            _actors(t.counted(k["top_actors"]))
            + (
                f'<br><span class="muted">+{k["other_actors"]:,} other actor(s), '
                f"{k['other_actor_calls']:,} calls</span>"
                if k["other_actors"]
                else ""
            ),
            h(t.number(k["distinct_source_ips"])),
            h(t.listed(k["caller_accounts"])),
            _actors(t.listed(k["new_actors"])),
            h(t.number(k[r.ALERTS])),
        )
        for k in usage.head(MAX_TABLE_ROWS).iter_rows(named=True)
    ]
    headers = ("key", "calls", "errors", "operations", "actors", "IPs", "caller accounts",
               "new actors", "alerts")  # fmt: skip
    actors = [
        (
            _short(a[s.ACTOR]),
            h(t.number(a[r.CALLS])),
            h(t.number(a[r.ERRORS])),
            ", ".join(
                f"{_key(e['name'], report.aliases.get(e['name']))} ×{e['count']:,}"
                for e in (a["keys"] or [])[:3]
            )
            + (f" (+{len(a['keys']) - 3} more)" if len(a["keys"] or []) > 3 else ""),
            ", ".join(_key(k, report.aliases.get(k)) for k in (a["new_keys"] or [])[:5])
            + (f" (+{len(a['new_keys']) - 5} more)" if len(a["new_keys"] or []) > 5 else ""),
            h(t.listed(a["invoked_by"])),
        )
        for a in report.actor_usage.head(MAX_TABLE_ROWS).iter_rows(named=True)
    ]
    return (
        '<section id="usage"><h2>Key usage</h2>'
        + _table(headers, rows, numeric=(1, 2, 5, 8), key=(0,))
        + _more(usage.height, MAX_TABLE_ROWS, "key_usage.csv")
        + "<h3>By actor</h3>"
        + _table(
            ("actor", "calls", "errors", "keys used", "first use of", "via service"),
            actors,
            numeric=(1, 2),
        )
        + _more(report.actor_usage.height, MAX_TABLE_ROWS, "key_usage_by_actor.csv")
        + "</section>"
    )


def _rotation_due(k: dict[str, Any]) -> str:
    due = h(t.when(k[r.NEXT_ROTATION_DUE]))
    if k["days_overdue"]:
        due += f'<br><span class="muted">{h(t.number(k["days_overdue"]))} day(s) late</span>'
    return due


def _rotation(report: DailyReport) -> str:
    """Keys with a known rotation status, one row each; keys whose status the lake cannot tell,
    one row per reason with the keys listed — so a reason shared by twenty keys is read once."""
    known = report.rotation.filter(pl.col(r.ROTATION_STATUS) != "UNKNOWN")
    unknown = report.rotation.filter(pl.col(r.ROTATION_STATUS) == "UNKNOWN")
    rows = [
        (
            _badge(k[r.ROTATION_STATUS]),
            _key(k[s.KEY_ARN], k[r.ALIASES]),
            h(" / ".join(v for v in (k[r.KEY_SPEC], k[r.ORIGIN]) if v) or None),
            h(k[r.KEY_STATE]),
            h(t.number(k["rotation_period_days"])),
            h(t.when(k["last_rotation_at"]))
            + (
                f' <span class="muted">{h(k["last_rotation_type"])}</span>'
                if k["last_rotation_type"]
                else ""
            ),
            _rotation_due(k),
            h(k["not_applicable_reason"] or k["note"], 600),
        )
        for k in known.iter_rows(named=True)
    ]
    headers = ("status", "key", "spec / origin", "state", "period (days)", "last rotation",
               "next due", "note")  # fmt: skip
    groups: dict[str, list[dict[str, Any]]] = {}
    for k in unknown.iter_rows(named=True):
        groups.setdefault(k["unknown_reason"] or t.MISSING, []).append(k)
    grouped = [
        (
            h(reason, 600),
            f"<b>{len(keys):,}</b>: "
            + ", ".join(
                _key(k[s.KEY_ARN], k[r.ALIASES])
                + (f" ({h(k[r.KEY_STATE])})" if k[r.KEY_STATE] else "")
                for k in keys
            ),
        )
        for reason, keys in groups.items()
    ]
    unknown_part = (
        f"<h3>Rotation unknown ({unknown.height:,} key(s))</h3>"
        '<p class="muted">The lake holds no rotation fact about these keys; run the report with '
        "--inventory to ask KMS. Why, by what the lake holds:</p>"
        + _table(("why unknown", "keys"), grouped)
        if grouped
        else ""
    )
    return (
        '<section id="rotation"><h2>Key rotation</h2>'
        '<p class="muted">Overdue means rotation is on and the next rotation is more than '
        "2 days late. Keys that cannot rotate automatically are listed as NOT_APPLICABLE with "
        "the reason.</p>"
        + _table(headers, rows, numeric=(4,), nowrap=(0, 3), key=(1,))
        + unknown_part
        + "</section>"
    )


def _change_details(c: dict[str, Any]) -> str:
    if c["change_kind"] == r.CHANGE_GRANT:
        fields = [("grant", c["grant_id"]), ("grantee", c["grantee_principal"]),
                  ("retiring", c["retiring_principal"]),
                  ("operations", t.listed(c["grant_operations"], 12)),
                  ("constraints", c["grant_constraints"])]  # fmt: skip
    else:
        fields = [
            ("principals +", t.listed(c["principals_added"], 8)),
            ("principals −", t.listed(c["principals_removed"], 8)),
            ("actions +", t.listed(c["actions_added"], 8)),
            ("actions −", t.listed(c["actions_removed"], 8)),
            ("conditions +", t.listed(c["conditions_added"], 8, 200)),
            ("conditions −", t.listed(c["conditions_removed"], 8, 200)),
            ("outside accounts +", t.listed(c["outside_accounts_added"])),
            ("open to anyone", t.listed(c["public_actions"])),
            ("previous", f"{t.when(c['previous_event_time'])} by {c['previous_actor']}"
             if c["previous_event_id"] else "no earlier policy known"),
        ]  # fmt: skip
    shown = [(label, value) for label, value in fields if value not in (None, t.MISSING)]
    return "".join(f"<div><span class=\"muted\">{escape(label)}:</span> {h(value, 600)}</div>"
                   for label, value in shown)  # fmt: skip


def _policy(report: DailyReport) -> str:
    rows = [
        (
            h(t.when(c[s.EVENT_TIME], seconds=True)),
            h(c[s.EVENT_NAME]),
            _key(c[s.KEY_ARN], report.aliases.get(c[s.KEY_ARN])),
            _short(c[s.ACTOR]),
            h("yes" if c["succeeded"] else f"no ({c[s.ERROR_CODE]})"),
            h(c["summary"], 1000),
            _change_details(c),
        )
        for c in report.policy_changes.iter_rows(named=True)
    ]
    headers = ("time", "event", "key", "actor", "succeeded", "what changed", "details")
    return (
        '<section id="policy"><h2>Key policy and grant changes</h2>'
        + _table(headers, rows, nowrap=(1,), key=(2,))
        + "</section>"
    )


def _exposure(k: dict[str, Any]) -> str:
    """Who outside the key's organisation its policy or grants let in."""
    parts = []
    if k["policy_public_actions"]:
        parts.append(f"<b>anyone</b>: {h(t.listed(k['policy_public_actions']))}")
    if k["policy_outside_accounts"]:
        parts.append(f"policy: {h(t.listed(k['policy_outside_accounts']))}")
    if k["outside_grantees"]:
        parts.append(f"grants: {_actors(t.listed(k['outside_grantees']))}")
    return "<br>".join(parts) or h(None)


def _inventory(report: DailyReport) -> str:
    rows = [
        (
            _key(k[s.KEY_ARN], k[r.ALIASES]),
            h(f"{k[s.ACCOUNT_ID] or t.MISSING} / {k[s.AWS_REGION] or t.MISSING}"),
            h(k[r.KEY_STATE])
            + (
                f'<br><span class="muted">deletion {h(t.when(k[r.DELETION_DATE]))}</span>'
                if k[r.PENDING_DELETION]
                else ""
            ),
            h(t.when(k["last_used"])),
            _actors(t.listed(k["policy_principals"], 4))
            if k["policy_known"]
            else '<span class="muted">not in the lake</span>',
            _exposure(k),
            h(t.number(k["active_grants"])),
            h(k[r.ROTATION_STATUS]),
            h(t.number(k["alerts_on_day"])),
        )
        for k in report.keys.iter_rows(named=True)
    ]
    headers = ("key", "account / region", "state", "last used", "policy allows",
               "outside the organisation", "active grants", "rotation", "alerts")  # fmt: skip
    return (
        '<section id="inventory"><h2>Key inventory</h2>'
        '<p class="muted">Every key seen in the lake up to this day, with its last known key '
        "policy (from CloudTrail) and the grants created and not retired since the lake began. "
        "First use and every other column are in keys.csv.</p>"
        + _table(headers, rows, numeric=(6, 8), key=(0,))
        + "</section>"
    )


def _key_legend(report: DailyReport) -> str:
    """The full ARN of every key label, readable without hovering or scripts."""
    keys = report.named_keys()
    rows = [(_key(k, report.aliases.get(k)), h(k), h(t.listed(report.aliases.get(k))))
            for k in keys]  # fmt: skip
    return (
        '<section id="key-legend"><h2>Key legend</h2><details><summary>The full ARN of each of '
        f"the {len(keys):,} keys named in this report</summary>"
        + _table(("key", "key ARN", "aliases"), rows, key=(0,))
        + "</details></section>"
    )


def _warming_up(report: DailyReport) -> str:
    """Detectors that could not judge the day on full history, said before anything they
    would have found: silence from them is not a clean bill of health."""
    if not report.warming_up:
        return ""
    items = "".join(
        f"<li><b>{h(w['id'])}</b>: {t.number(w['history_days'])} of "
        f"{t.number(w['needed_days'])} day(s) of history; fill it with "
        f"<code>{h(w['backfill'], 1000)}</code></li>"
        for w in report.warming_up
    )
    return (
        '<section id="warming-up"><h2>Detectors warming up</h2><p class="muted">These '
        "detectors could not run, or ran on partial history, for this day.</p>"
        f"<ul>{items}</ul></section>"
    )


def render(report: DailyReport) -> str:
    """The complete HTML document."""
    first = report.lake_first_day.isoformat() if report.lake_first_day else "—"
    notes = "".join(f'<p class="muted">{h(note, 1000)}</p>' for note in report.notes)
    nav = "".join(
        f'<a href="#{anchor}">{escape(label)}</a>'
        for anchor, label in (
            ("incidents", "Incidents"),
            ("alerts", "Alerts"),
            ("charts", "Charts"),
            ("details", "Alert details"),
            ("usage", "Usage"),
            ("rotation", "Rotation"),
            ("policy", "Policies and grants"),
            ("inventory", "Inventory"),
            ("key-legend", "Key legend"),
        )
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>keytrail · KMS key report {report.day.isoformat()}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>KMS key report — {report.day.isoformat()} (UTC)</h1>"
        f'<p class="meta">Generated {escape(t.when(report.generated_at))} by keytrail from '
        f"AWS CloudTrail. Lake history from {escape(first)}. Every value taken from a record "
        f"is shown as text.</p>{notes}<nav>{nav}</nav></header><main>"
        + _headline(report)
        + _warming_up(report)
        + _incidents(report)
        + _alerts(report)
        + _charts(report)
        + _alert_details(report)
        + _usage(report)
        + _rotation(report)
        + _policy(report)
        + _inventory(report)
        + _key_legend(report)
        + "</main><footer>keytrail · report files: key_usage, key_usage_by_actor, rotation, "
        "policy_changes and keys (.parquet and .csv), summary.json, report.md</footer>"
        "</body></html>\n"
    )
