"""Hostile strings through every writer: property tests over HTML, Markdown, CSV, OCSF, ASFF,
HEC and the terminal.

Each test puts arbitrary text built from known-hostile pieces (bidi controls, C0/C1 controls,
ANSI escapes, ``<script>``, attribute breakers, spreadsheet formulas, a bare ``\\r``, Markdown
link and table syntax, rich markup and emoji codes, lone surrogates where the writer takes a
``str``, values over 64 KiB) into alerts and report rows, and checks that the output parses
back with the structure it would have had for harmless text, carries no live markup, formula
or escape sequence, and is bounded. The default run takes seconds;
``HYPOTHESIS_PROFILE=fuzz`` runs the profile registered in conftest.py for minutes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import unicodedata
from html.parser import HTMLParser
from typing import Any

import botocore.session
import orjson
import polars as pl
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.text import Text

from analytics.lake import schema as s
from analytics.publish.export import asff, hec, ocsf
from analytics.publish.export import bounds as b
from analytics.publish.reports import csv_safe, html, markdown
from analytics.publish.reports.daily import DailyReport
from flows.console import plain, terminal
from tests.fuzz_profiles import fuzzing
from tests.publish import fixture, ocsf_schema
from tests.publish.conftest import BuiltReport

EXAMPLES = settings.default.max_examples if fuzzing() else 25
bounded = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

PIECES = [
    "\u202e", "\u202a", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f",
    "\u061c", "\u200b", "\ufeff", "\x00", "\x07", "\x08", "\x7f", "\x85", "\x9b", "\u2028",
    "\x1b[31m", "\x1b[2J", "\x1b]8;;http://evil.example\x1b\\", "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>', "'", '"', "&amp;", "&#60;", "=cmd|' /C calc'!A0",
    "\r=1+1", "\n@SUM(1)", "\r\n-2", "\t+3", ",", "[x](http://evil.example)",
    "![i](http://evil.example/i.png)", "<http://evil.example>", "www.evil.example",
    "a@evil.example", "| a | b |", "`code`", "*em* _em_ ~~s~~", "# heading", "- item", "1. item",
    "    indented", "===", "[bold red]fake[/]", "[link=http://evil.example]x[/link]", ":skull:",
    "\\", "\\[bold]", "Z" * 70_000,
]  # fmt: skip
hostile_text = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), min_size=1, max_size=6
).map("".join)
"""Strings that can be stored in Arrow (no lone surrogates): what a record can carry."""
hostile_str = st.one_of(
    hostile_text,
    st.tuples(hostile_text, st.sampled_from(["\ud800", "\udfff", "\udc80x"])).map("".join),
)
"""Any Python string, lone surrogates included, for writers that take a ``str``."""

INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                       r"\u2066-\u2069\ufeff\ud800-\udfff]")  # fmt: skip


def _no_invisible(text: str, allowed: str = "") -> None:
    found = {ch for ch in INVISIBLE.findall(text) if ch not in allowed}
    assert not found, sorted(f"U+{ord(ch):04X}" for ch in found)
    for ch in set(text) - set(allowed):
        assert not b.is_invisible(ch), f"U+{ord(ch):04X}"


# --- whole documents: same structure as with harmless text -----------------------------------

ALERT_TEXT = (s.TITLE, s.REASON, s.ACTOR, s.BASELINE, s.INVOKED_BY, s.KEY_ARN, s.OBSERVED_PATTERN)
EVIDENCE_TEXT = (s.USER_AGENT, s.PRINCIPAL_ARN, "source", s.EVENT_NAME, s.ERROR_CODE)


def _with_text(report: DailyReport, text: str) -> DailyReport:
    alerts = report.alerts.with_columns(pl.lit(text).alias(c) for c in ALERT_TEXT)
    evidence = report.evidence.with_columns(pl.lit(text).alias(c) for c in EVIDENCE_TEXT)
    return dataclasses.replace(report, alerts=alerts, evidence=evidence, notes=[text, text])


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(name for name, _ in attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.tags.append(("<!--", ()))


def _html_structure(page: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser.tags


_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _md_structure(document: str) -> list[str]:
    out: list[str] = []
    for token in _MD.parse(document):
        out.append(token.type)
        out.extend(child.type for child in token.children or [])
    return out


@bounded
@given(text=hostile_text)
def test_html_report_gains_no_element_or_attribute(fixture_report: BuiltReport, text: str) -> None:
    harmless = _html_structure(html.render(_with_text(fixture_report.report, "x")))
    page = html.render(_with_text(fixture_report.report, text))
    assert _html_structure(page) == harmless
    _no_invisible(page, "\n\r\t")  # white space in HTML; shown as escapes it would mislead
    assert len(page.encode()) < 2 * len(html.render(fixture_report.report).encode()) + 200_000


@bounded
@given(text=hostile_text)
def test_markdown_report_gains_no_link_table_cell_or_block(
    fixture_report: BuiltReport, text: str
) -> None:
    assume(markdown.md(text))  # an empty value leaves out its paragraph, as it should
    harmless = _md_structure(markdown.render(_with_text(fixture_report.report, "x")))
    document = markdown.render(_with_text(fixture_report.report, text))
    assert _md_structure(document) == harmless
    assert not re.search(r"(?<!\\)(?:<|:(?=//)|@|\bwww\.)", document.split("\n", 2)[2])
    _no_invisible(document, "\n")


# --- single values: the escaping functions themselves ----------------------------------------


@bounded
@given(text=hostile_str)
def test_html_value_is_text_in_an_element_and_in_an_attribute(text: str) -> None:
    shown = html.h(text)
    assert _html_structure(f'<td title="{shown}">{shown}</td>') == [("td", ("title",))]
    _no_invisible(shown, "\n\r\t")
    assert len(shown) <= 10 * b.DISPLAY_CHARS + 60


@bounded
@given(text=hostile_str)
def test_markdown_value_makes_no_structure_in_a_cell_or_at_a_line_start(text: str) -> None:
    shown = markdown.md(text)
    assume(shown)  # an empty cell is a cell without text, not a new structure
    table = f"| a | b |\n|---|---|\n| {shown} | x |\n"
    assert _md_structure(table) == _md_structure("| a | b |\n|---|---|\n| y | x |\n")
    assert _md_structure(f"{shown}\n") in (_md_structure("y\n"), [])
    _no_invisible(shown)


@bounded
@given(rows=st.lists(st.lists(hostile_text, min_size=3, max_size=3), min_size=1, max_size=4))
def test_csv_parses_back_to_its_rows_with_no_formula_start(rows: list[list[str]]) -> None:
    text = csv_safe.rows_to_csv(["a", "b", "c"], [[*row, 7] for row in rows])
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert len(parsed) == len(rows) + 1
    for row in parsed[1:]:
        assert len(row) == 4 and row[3] == "7"
        for value in row[:3]:
            assert len(value.encode()) <= b.CSV_CELL_BYTES
            for line in re.split(r"[\r\n]", value):
                assert not line.startswith(csv_safe.FORMULA_TRIGGERS), repr(value[:80])
            _no_invisible(value, "\r\n\t")


# --- exports ---------------------------------------------------------------------------------

BASE_ALERT = dict(next(fixture.alerts().iter_rows(named=True)))
ALERT_STRINGS = (s.DETECTOR, s.SEVERITY, s.TITLE, s.REASON, s.ACTOR, s.INVOKED_BY, s.KEY_ARN,
                 s.BASELINE, s.OBSERVED_PATTERN, s.RUNBOOK, s.AWS_REGION, s.ACCOUNT_ID)  # fmt: skip
EVENT_STRINGS = (s.EVENT_ID, s.EVENT_NAME, s.EVENT_SOURCE, s.PRINCIPAL_ARN, s.PRINCIPAL_TYPE,
                 s.ACTOR, s.INVOKED_BY, s.SOURCE_IP, s.USER_AGENT, s.ERROR_CODE, s.ERROR_MESSAGE,
                 s.KEY_ARN, s.REQUEST_ID)  # fmt: skip
_SECURITY_HUB = botocore.session.get_session().get_service_model("securityhub")
_IMPORT_SHAPE = _SECURITY_HUB.operation_model("BatchImportFindings").input_shape


def _hostile_alert(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    alert = {**BASE_ALERT, **dict.fromkeys(ALERT_STRINGS, text)}
    alert[s.MITRE] = [text, "T1078"]
    alert[s.EVIDENCE_EVENT_IDS] = [text] * 3
    alert[s.TOP_FEATURES] = [{"name": text, "value": 1.0, "text": text}]
    events = [dict.fromkeys(EVENT_STRINGS, text) for _ in range(3)]
    return alert, events


@bounded
@given(text=hostile_str)
def test_ocsf_and_hec_are_json_under_64_kib(text: str) -> None:
    alert, events = _hostile_alert(text)
    finding = ocsf.finding(alert, product_version="0", events=events)
    line = ocsf.jsonl([finding])
    assert len(line) < b.MAX_EVENT_BYTES and line.count(b"\n") == 1
    ocsf_schema.assert_valid([orjson.loads(line)])
    body = hec.body([hec.envelope(finding), hec.envelope(finding)])
    events_back = [orjson.loads(part) for part in body.split(b"\n")]
    assert len(events_back) == 2
    assert all(len(hec.encode(event)) < b.MAX_EVENT_BYTES for event in events_back)


@bounded
@given(text=hostile_str)
def test_asff_passes_botocore_validation_within_byte_limits(text: str) -> None:
    alert, _ = _hostile_alert(text)
    finding = asff.finding(alert, account_id="123456789012", region="us-east-1")
    report = ParamValidator().validate({"Findings": [finding]}, _IMPORT_SHAPE)
    assert not report.has_errors(), report.generate_report()
    assert len(orjson.dumps(finding)) < b.MAX_EVENT_BYTES
    assert len(finding["Title"].encode()) <= b.ASFF_TITLE_BYTES
    assert len(finding["Description"].encode()) <= b.ASFF_DESCRIPTION_BYTES
    for key, value in finding["ProductFields"].items():
        assert len(key.encode()) <= b.ASFF_PRODUCT_FIELD_KEY_BYTES
        assert len(value.encode()) <= b.ASFF_PRODUCT_FIELD_BYTES


# --- terminal --------------------------------------------------------------------------------


def _render(content: str | Text) -> str:
    out = io.StringIO()
    terminal(file=out, force_terminal=True, width=200).print(content, highlight=False)
    return out.getvalue()


@bounded
@given(text=hostile_str)
def test_terminal_line_has_only_keytrails_own_styling(text: str) -> None:
    shown = plain(text)
    rendered = _render(f"[red]failed[/] {shown}: [bold]{shown}[/]")
    visible_text = Text.from_markup(shown, emoji=False).plain
    expected = _render(Text.assemble(("failed", "red"), " ", visible_text, ": ",
                                     (visible_text, "bold")))  # fmt: skip
    assert rendered == expected
    assert not any(unicodedata.category(ch) in ("Cf", "Cs") for ch in rendered)
    assert len(visible_text.encode()) <= b.TERMINAL_BYTES + 8 * b.TERMINAL_BYTES // 2
