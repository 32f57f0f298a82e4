"""Values from records are data, never markup: HTML, Markdown and CSV escaping."""

from __future__ import annotations

import csv
import io
import re

import polars as pl
import pytest

from analytics.publish.reports import csv_safe
from analytics.publish.reports.html import h
from analytics.publish.reports.markdown import md
from tests.publish import fixture
from tests.publish.conftest import BuiltReport


def test_html_shows_a_script_user_agent_as_text(fixture_report: BuiltReport) -> None:
    page = fixture_report.files["report.html"].read_text("utf-8")
    assert "&lt;script&gt;alert(&quot;kt&quot;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()


def test_html_forbids_scripts_and_remote_loads(fixture_report: BuiltReport) -> None:
    page = fixture_report.files["report.html"].read_text("utf-8")
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert "@import" not in page and "url(" not in page


def test_html_escapes_every_record_string(fixture_report: BuiltReport) -> None:
    page = fixture_report.files["report.html"].read_text("utf-8")
    # The hostile reason and user agents appear only escaped.
    assert "[used](http://x)" in page  # brackets are harmless in HTML, the text is kept
    assert "burst|agent `tick`" in page
    assert 'alert("kt")' not in page  # quotes are escaped too (attributes cannot be broken)


def test_markdown_escapes_pipes_backticks_brackets_and_newlines(
    fixture_report: BuiltReport,
) -> None:
    text = fixture_report.files["report.md"].read_text("utf-8")
    assert r'\<script\>alert("kt")\</script\>' in text
    assert not re.search(r"(?<!\\)<", text)  # every < is escaped
    assert r"burst\|agent \`tick\` \[x\](http\://evil.example) second line" in text
    assert r"root \| should \`never\` be \[used\](http\://x)" in text
    # Every table row keeps its column count: no escaped pipe ends a cell early.
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
            assert len(widths) == 1, block


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a|b", r"a\|b"),
        ("`code`", r"\`code\`"),
        ("[x](http://e)", r"\[x\](http\://e)"),
        ("line1\nline2\r\nline3", "line1 line2 line3"),
        ("<b>&", r"\<b\>&"),
        ("MITRE ATT&CK", "MITRE ATT&CK"),
        ("&amp; &#60;", r"\&amp; &\#60;"),
        (
            "<https://evil.example> www.evil.example a@evil.example",
            r"\<https\://evil.example\> www\.evil.example a\@evil.example",
        ),
        ("# heading", r"\# heading"),
        ("- item", r"\- item"),
        ("1. item", r"1\. item"),
        ("=1+1", r"\=1+1"),
        ("gnp\u202eexe\u2066\u200f\x1b[31m", r"gnp\\u202eexe\\u2066\\u200f\\x1b\[31m"),
        ("*bold* _it_ ~s~", r"\*bold\* \_it\_ \~s\~"),
        ("back\\slash", "back\\\\slash"),
        (None, "—"),
    ],
)
def test_md_escape(raw: str | None, escaped: str) -> None:
    assert md(raw) == escaped


def test_markdown_report_writes_ampersands_as_text_not_entities(
    fixture_report: BuiltReport,
) -> None:
    text = fixture_report.files["report.md"].read_text("utf-8")
    assert "**MITRE ATT&CK:**" in text
    assert "&amp;" not in text and "&lt;" not in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("report\u202egnp.exe", "report\\u202egnp.exe"),
        ("a\u2066b\u2069c\u200e\u200f\u061c", "a\\u2066b\\u2069c\\u200e\\u200f\\u061c"),
        ("\x1b[31mred\x07\x85", "\\x1b[31mred\\x07\\x85"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ],
)
def test_html_shows_invisible_characters_as_escapes(raw: str, shown: str) -> None:
    assert h(raw) == shown


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_formula_cells(lead: str) -> None:
    assert csv_safe.neutralise(f"{lead}cmd") == f"'{lead}cmd"
    assert csv_safe.neutralise(f"x{lead}cmd") == f"x{lead}cmd"


def test_csv_keeps_numbers_as_numbers() -> None:
    text = csv_safe.to_csv(pl.DataFrame({"name": ["-1", "ok"], "count": [-1, 2]}))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["name", "count"], ["'-1", "-1"], ["ok", "2"]]


def test_report_csv_neutralises_a_formula_user_agent(fixture_report: BuiltReport) -> None:
    rows = list(csv.DictReader(io.StringIO(fixture_report.files["policy_changes.csv"].read_text())))
    denied = next(row for row in rows if row["error_code"] == "AccessDenied")
    assert denied["user_agent"] == "'" + fixture.FORMULA_AGENT
    for row in rows:
        for value in row.values():
            assert not value.startswith(csv_safe.FORMULA_TRIGGERS), value


def test_csv_neutralises_record_values_in_nested_cells() -> None:
    frame = pl.DataFrame(
        {"top_actors": [[{"name": "=cmd|' /C calc'!A0", "count": 3}]], "aliases": [["@SUM(1)"]]}
    )
    rows = list(csv.reader(io.StringIO(csv_safe.to_csv(frame))))
    assert rows[1] == ["'=cmd|' /C calc'!A0 (3)", "'@SUM(1)"]


HOSTILE_ROWS = [
    ["arn:aws:iam::111122223333:role/x\r=1+1", "StringEquals\n@SUM(1)", 3],
    ["ok\r\n+cmd", "a\n\r-2", 4],
    ["plain", "", 5],
]


def _csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_a_bare_carriage_return_cannot_start_a_row_or_a_formula() -> None:
    rows = _csv_rows(csv_safe.rows_to_csv(["actor", "condition", "count"], HOSTILE_ROWS))
    assert len(rows) == 1 + len(HOSTILE_ROWS)
    assert all(len(row) == 3 for row in rows)
    assert rows[1][0] == "arn:aws:iam::111122223333:role/x\r'=1+1"
    for row in rows[1:]:
        for value in row[:2]:
            for line in re.split(r"[\r\n]", value):
                assert not line.startswith(csv_safe.FORMULA_TRIGGERS), repr(value)


def test_csv_cells_show_invisible_characters_and_are_bounded() -> None:
    text = csv_safe.to_csv(pl.DataFrame({"agent": ["a\u202egnp.exe\x1b[31m", "x" * 100_000]}))
    rows = _csv_rows(text)
    assert rows[1] == ["a\\u202egnp.exe\\x1b[31m"]
    assert rows[2][0].endswith("…[clipped, 100000 bytes]")
    assert len(rows[2][0].encode()) <= 32_000


_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _outside_code(text: str) -> str:
    """The Markdown text with fenced blocks and code spans removed (entities are literal there)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text)


@pytest.mark.parametrize("built", ["fixture_report", "sample_report"])
def test_markdown_has_no_html_entities_outside_code(
    built: str, request: pytest.FixtureRequest
) -> None:
    """Markdown is read raw as often as rendered: ``MITRE ATT&CK`` must read as that, never as
    ``ATT&amp;CK``. An ``&`` that would start an entity is backslash-escaped instead."""
    report: BuiltReport = request.getfixturevalue(built)
    text = report.files["report.md"].read_text("utf-8")
    prose = _outside_code(text)
    assert [m.group(0) for m in _ENTITY.finditer(prose) if prose[m.start() - 1] != "\\"] == []
    assert "MITRE ATT&CK" in text


def test_markdown_escapes_hostile_text_without_entities(fixture_report: BuiltReport) -> None:
    """The fixture's hostile values stay inert in report.md, escaped the Markdown way."""
    text = fixture_report.files["report.md"].read_text("utf-8")
    assert r'\<script\>alert("kt")\</script\>' in text
    assert "&lt;" not in text and "&quot;" not in text
    assert md("&amp; &#60; <b> ATT&CK") == r"\&amp; &\#60; \<b\> ATT&CK"
