"""``report.md``: the day's report as Markdown, to paste into a ticket.

Markdown has no escaping of its own for untrusted text, and tickets render it with different
engines (GitHub, GitLab, Jira's Markdown mode), so :func:`md` is conservative: it shows
invisible characters as escapes, turns line breaks into spaces (a newline would end a table row
or start a heading), and backslash-escapes — CommonMark's own escaping, so the raw file reads
as the text — the characters that make emphasis, code, links, tables, headings, tags and
strikethrough (`` \\ ` * _ [ ] | ~ # < > ``), an ``@`` (an e-mail autolink), the ``:`` of
``scheme://`` and the dot of ``www.`` (autolinked URLs), an ``&`` that would start an entity
reference, and a ``-``, ``+``, ``=`` or ``1.`` that would start a list, a rule or a heading
underline. A user agent of ``<script>`` arrives in the ticket as the text ``<script>``; a role
named ``a|b`` stays in its table cell; ``MITRE ATT&CK`` stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

from analytics.detect.bands import hours_above
from analytics.lake import schema as s
from analytics.publish.reports import schemas as r
from analytics.publish.reports import text as t
from analytics.publish.reports.daily import FINDINGS, DailyReport

MAX_TABLE_ROWS = 50
_ESCAPED = frozenset("\\`*_[]|~#<>@")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_AUTOLINK = re.compile(r"(?<=[0-9A-Za-z]):(?=//)|(?<=\bwww)\.", re.IGNORECASE)
_LIST_NUMBER = re.compile(r"\d{1,9}(?=[.)](?:\s|$))")


def md(value: Any, limit: int = t.DISPLAY_LIMIT) -> str:
    """Display text of a record value, safe anywhere in Markdown: inline, in a table cell or at
    the start of a line."""
    text = t.one_line(value, limit).replace("\t", " ").strip(" ")  # no indented code block
    escaped = "".join("\\" + ch if ch in _ESCAPED else ch for ch in text)
    escaped = _AUTOLINK.sub(lambda m: "\\" + m.group(0), _ENTITY.sub("\\\\&", escaped))
    if escaped[:1] in ("-", "+", "="):  # a list item, a rule, a heading underline
        return "\\" + escaped
    number = _LIST_NUMBER.match(escaped)  # an ordered list item
    return escaped[: number.end()] + "\\" + escaped[number.end() :] if number else escaped


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A pipe table from already-escaped cells."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    body = ["| " + " | ".join(row) + " |" for row in rows]
    if not body:
        body = ["| " + " | ".join(["none", *[""] * (len(headers) - 1)]) + " |"]
    return [*lines, *body, ""]


def _key(key: Any, aliases: Sequence[str] | None) -> str:
    """A key by its label (:func:`analytics.publish.reports.text.key_label`); the key legend at the
    end of the document gives each label's full ARN."""
    return md(t.key_label(key, aliases))


def _findings(report: DailyReport) -> list[str]:
    """The headline findings that name keys, as the HTML report's cards."""
    lines: list[str] = []
    for kind, title in FINDINGS.items():
        found = report.findings.get(kind) or []
        if found:
            lines += [f"**{md(title)} ({len(found):,}):**", ""]
            lines += [f"- {md(f['label'])}: {md(t.short_arn(f['detail']))}" for f in found]
            lines.append("")
    return lines


def _rotation(report: DailyReport) -> list[str]:
    """Keys with a known rotation status one per row; unknown ones one row per reason."""
    known = report.rotation.filter(pl.col(r.ROTATION_STATUS) != "UNKNOWN")
    unknown = report.rotation.filter(pl.col(r.ROTATION_STATUS) == "UNKNOWN")
    lines = ["## Key rotation", ""]
    lines += _table(
        ("status", "key", "state", "last rotation", "next due", "note"),
        (
            (
                md(k[r.ROTATION_STATUS]),
                _key(k[s.KEY_ARN], k[r.ALIASES]),
                md(k[r.KEY_STATE]),
                md(t.when(k["last_rotation_at"])),
                md(t.when(k[r.NEXT_ROTATION_DUE])),
                md(k["not_applicable_reason"] or k["note"], 600),
            )
            for k in known.iter_rows(named=True)
        ),
    )
    if unknown.is_empty():
        return lines
    groups: dict[str, list[str]] = {}
    for k in unknown.iter_rows(named=True):
        groups.setdefault(k["unknown_reason"] or t.MISSING, []).append(
            _key(k[s.KEY_ARN], k[r.ALIASES])
        )
    lines += [
        f"Rotation unknown for {unknown.height:,} key(s): the lake holds no rotation fact about "
        "them (run the report with --inventory to ask KMS).",
        "",
    ]
    lines += _table(
        ("why unknown", "keys"),
        (
            (md(reason, 600), f"{len(keys):,}: " + ", ".join(keys))
            for reason, keys in groups.items()
        ),
    )
    return lines


def _key_legend(report: DailyReport) -> list[str]:
    """Each key label's full ARN: the tables name keys only by label."""
    ordered = report.named_keys()
    lines = ["## Key legend", ""]
    return lines + _table(
        ("key", "key ARN", "aliases"),
        ((md(report.label(k)), md(k), md(t.listed(report.aliases.get(k)))) for k in ordered),
    )


def _incidents(report: DailyReport) -> list[str]:
    """Each incident: what it is, its timeline, then the details of its alerts of the day."""
    lines = [f"## Incidents ({report.incidents.height:,})", ""]
    if report.incidents.is_empty():
        return [*lines, "No incidents: no alerts of this day belong together.", ""]
    for incident in report.incidents.iter_rows(named=True):
        lines += [
            f"### {md(str(incident[s.SEVERITY]).upper())} · {md(incident[s.TITLE], 600)}",
            "",
            md(incident[s.SUMMARY], 2000),
            "",
        ]
        lines += [
            f"- **{md(label)}:** {md(value, 1000)}" for label, value in t.incident_facts(incident)
        ]
        lines += ["", "Timeline:", ""]
        lines += _table(
            ("time", "severity", "what happened", "detector", "evidence"),
            (
                (
                    md(t.when(entry["time"])),
                    md(entry["severity"]),
                    md(entry["what"], 600),
                    md(entry["detector"]),
                    t.number(entry["evidence_count"]),
                )
                for entry in incident[s.TIMELINE] or []
            ),
        )
        for a in report.alerts_of(incident[s.INCIDENT_ID]).iter_rows(named=True):
            lines += _alert(report, a, "####")
    return lines


def _alert(report: DailyReport, a: dict[str, Any], level: str) -> list[str]:
    """One alert in full: reason, facts, drivers and evidence, under a heading of ``level``."""
    lines = [
        f"{level} {md(str(a[s.SEVERITY]).upper())} · {md(a[s.TITLE])}",
        "",
        md(a[s.REASON], 2000),
        "",
    ]
    facts = [
        ("Detector", a[s.DETECTOR]),
        ("Window", t.window(a[s.WINDOW_START], a[s.WINDOW_END])),
        ("Key", a[s.KEY_ARN]),
        ("Keys", t.related_keys(a)),
        ("Actor", a[s.ACTOR]),
        ("Via service", a[s.INVOKED_BY]),
        (
            "Account / region",
            f"{a[s.ACCOUNT_ID] or t.MISSING} / {a[s.AWS_REGION] or t.MISSING}",
        ),
        ("Pattern", a[s.OBSERVED_PATTERN]),
        ("Baseline", a[s.BASELINE]),
        ("MITRE ATT&CK", t.listed(a[s.MITRE])),
        ("Evidence events", t.number(a[s.EVIDENCE_COUNT])),
        ("Alert ID", a[s.ALERT_ID]),
    ]
    lines += [f"- **{md(label)}:** {md(value)}" for label, value in facts if value is not None]
    for feature in a[s.TOP_FEATURES] or []:
        lines.append(f"- **Driver:** {md(feature.get('text') or feature.get('name'))}")
    lines.append("")
    evidence = report.evidence.filter(pl.col(s.ALERT_ID) == a[s.ALERT_ID])
    if not evidence.is_empty():
        lines += _table(
            ("time", "event", "principal", "source", "user agent", "error"),
            (
                (
                    md(t.when(e[s.EVENT_TIME], seconds=True)),
                    md(e[s.EVENT_NAME]),
                    md(e[s.PRINCIPAL_ARN] or e[s.ACTOR]),
                    md(e["source"]),
                    md(e[s.USER_AGENT]),
                    md(e[s.ERROR_CODE]),
                )
                for e in evidence.iter_rows(named=True)
            ),
        )
    return lines


def _alerts(report: DailyReport) -> list[str]:
    """Alerts outside any incident, in full; then the suppressed ones in a table."""
    active = report.active_alerts
    alone = report.lone_alerts
    lines = [f"## Alerts outside any incident ({alone.height:,} of {active.height:,})", ""]
    if active.is_empty():
        lines += ["No alerts for this day.", ""]
    elif alone.is_empty():
        lines += ["Every alert of this day is part of an incident.", ""]
    for a in alone.iter_rows(named=True):
        lines += _alert(report, a, "###")
    suppressed = report.alerts.filter(pl.col(s.SUPPRESSED_BY).is_not_null())
    if not suppressed.is_empty():
        lines += [f"### Suppressed ({suppressed.height:,})", ""]
        lines += _table(
            ("severity", "detector", "key", "actor", "suppressed by"),
            (
                (
                    md(a[s.SEVERITY]),
                    md(a[s.DETECTOR]),
                    _key(a[s.KEY_ARN], report.aliases.get(a[s.KEY_ARN])),
                    md(a[s.ACTOR]),
                    md(a[s.SUPPRESSED_BY]),
                )
                for a in suppressed.iter_rows(named=True)
            ),
        )
    return lines


def _charts(report: DailyReport) -> list[str]:
    keys = list(dict.fromkeys(report.bands.get_column(s.KEY_ARN).to_list()))
    lines = ["## Alerted keys against their usual hourly range", ""]
    if not keys:
        return [*lines, "No alert names a key.", ""]
    for key in keys:
        rows = report.bands.filter(pl.col(s.KEY_ARN) == key)
        total = int(rows.select(pl.col("calls").sum()).item() or 0)
        days = int(rows.select(pl.col("history_days").max()).item() or 0)
        above = hours_above(report.bands, key)
        if not days:
            detail = "no history before this day to compare with"
        elif above:
            detail = "above the usual range (10th–90th percentile over {} day(s)) at {}".format(
                days,
                ", ".join(
                    f"{hour:02d}:00 {calls:,} calls vs ≤{t.number(high)}"
                    for hour, calls, _low, high in above
                ),
            )
        else:
            detail = f"within the usual range every hour ({days} day(s) of history)"
        hours = sorted(report.alerted_hours(key))
        if hours:
            detail += "; hours of an alert on the key: " + ", ".join(f"{h:02d}:00" for h in hours)
        changes = [
            f"{t.when(e[s.EVENT_TIME])} {t.clean(e[s.EVENT_NAME], 80)} by "
            f"{t.short_arn(t.clean(e[s.ACTOR], 200))}"
            for e in report.markers.filter(pl.col(s.KEY_ARN) == key).iter_rows(named=True)
        ]
        if changes:
            detail += "; changes to the key: " + ", ".join(changes)
        label = _key(key, report.aliases.get(key))
        lines.append(f"- {label}: {total:,} calls; {md(detail, 2000)}")
    return [*lines, ""]


def _warming_up(report: DailyReport) -> list[str]:
    if not report.warming_up:
        return []
    lines = [
        "## Detectors warming up",
        "",
        "These detectors could not run, or ran on partial history, for this day.",
        "",
    ]
    lines += [
        f"- **{md(w['id'])}**: {t.number(w['history_days'])} of {t.number(w['needed_days'])} "
        f"day(s) of history; fill it with `{_code(w['backfill'])}`"
        for w in report.warming_up
    ]
    return [*lines, ""]


def _code(text: str) -> str:
    """Text inside a Markdown code span: no backticks (they would end it), one line."""
    return " ".join(str(text).replace("`", "'").split())


def render(report: DailyReport) -> str:
    """The complete Markdown document."""
    first = report.lake_first_day.isoformat() if report.lake_first_day else t.MISSING
    lines = [
        f"# KMS key report — {report.day.isoformat()} (UTC)",
        "",
        f"Generated {md(t.when(report.generated_at))} by keytrail from AWS CloudTrail; lake "
        f"history from {first}.",
        "",
    ]
    lines += [md(note, 1000) for note in report.notes]
    lines += ["## Headline", ""]
    lines += _table(
        ("figure", "value"),
        ((md(t.HEADLINE_LABELS.get(k, k)), t.number(v)) for k, v in report.headline.items()),
    )
    lines += _findings(report)
    lines += _warming_up(report)
    lines += _incidents(report)
    lines += _alerts(report)
    lines += _charts(report)
    usage = report.key_usage
    lines += ["## Key usage", ""]
    lines += _table(
        ("key", "calls", "errors", "operations", "top actors", "new actors", "alerts"),
        (
            (
                _key(k[s.KEY_ARN], k[r.ALIASES]),
                t.number(k[r.CALLS]),
                t.number(k[r.ERRORS]),
                md(t.counted(k["calls_by_operation"])),
                md(t.counted(k["top_actors"])),
                md(t.listed(k["new_actors"])),
                t.number(k[r.ALERTS]),
            )
            for k in usage.head(MAX_TABLE_ROWS).iter_rows(named=True)
        ),
    )
    if usage.height > MAX_TABLE_ROWS:
        lines += [f"{usage.height - MAX_TABLE_ROWS:,} more keys in key\\_usage.csv.", ""]
    lines += _rotation(report)
    lines += ["## Key policy and grant changes", ""]
    lines += _table(
        ("time", "event", "key", "actor", "succeeded", "what changed"),
        (
            (
                md(t.when(c[s.EVENT_TIME], seconds=True)),
                md(c[s.EVENT_NAME]),
                _key(c[s.KEY_ARN], report.aliases.get(c[s.KEY_ARN])),
                md(c[s.ACTOR]),
                md("yes" if c["succeeded"] else f"no ({c[s.ERROR_CODE]})"),
                md(c["summary"], 1000),
            )
            for c in report.policy_changes.iter_rows(named=True)
        ),
    )
    lines += ["## Key inventory", ""]
    lines += _table(
        ("key", "account / region", "state", "last used", "policy allows", "outside accounts",
         "active grants", "rotation"),
        (
            (_key(k[s.KEY_ARN], k[r.ALIASES]),
             md(f"{k[s.ACCOUNT_ID] or t.MISSING} / {k[s.AWS_REGION] or t.MISSING}"),
             md(k[r.KEY_STATE]), md(t.when(k["last_used"])),
             md(t.listed(k["policy_principals"], 4)) if k["policy_known"] else "not in the lake",
             md(t.listed(k["policy_outside_accounts"])), t.number(k["active_grants"]),
             md(k[r.ROTATION_STATUS]))
            for k in report.keys.iter_rows(named=True)
        ),
    )  # fmt: skip
    lines += _key_legend(report)
    return "\n".join(lines).rstrip("\n") + "\n"
