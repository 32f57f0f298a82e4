"""docs/detectors.md and docs/lake-schema.md are rendered from the code; they must not drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from analytics import docs_gen
from analytics.detect.detectors.registry import ALL_DETECTORS
from analytics.detect.scoring import MODEL_INFO
from analytics.lake import schema as s

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("relative", sorted(docs_gen.GENERATED, key=str), ids=str)
def test_generated_doc_is_up_to_date(relative: Path) -> None:
    committed = (REPO / relative).read_text(encoding="utf-8")
    rendered = docs_gen.GENERATED[relative]()
    assert committed == rendered, (
        f"{relative} is out of date with the code: run `python -m analytics.docs_gen` "
        "and commit the result"
    )


def test_catalogue_has_every_detector_with_severity_mitre_and_runbook() -> None:
    text = docs_gen.render_detectors()
    for detector in (*ALL_DETECTORS, MODEL_INFO):
        section = text.split(f"## {detector.id}\n", 1)[1].split("\n## ", 1)[0]
        assert f"severity **{detector.severity}**" in section
        for technique in detector.mitre_attack:
            assert f"[{technique}](https://attack.mitre.org/techniques/" in section
        assert "### What it means" in section and "### How to respond" in section
        assert section.count("\n1. ") == 1


def test_schema_doc_lists_every_column_of_every_table() -> None:
    text = docs_gen.render_lake_schema()
    for schema in (s.EVENT_SCHEMA, s.ALERT_SCHEMA, s.INCIDENT_SCHEMA, s.OBJECT_STATE_SCHEMA):
        for name in schema.names:
            assert f"| `{name}` |" in text
    incidents = text.split("## Incidents: `LAKE/incidents/event_date=YYYY-MM-DD/incidents.parquet`")
    assert len(incidents) == 2
    for field in s.TIMELINE_STRUCT:
        assert f"| `{field.name}` |" in incidents[1].split("\n## ", 1)[0]


def test_a_column_without_a_description_fails_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grown = s.EVENT_SCHEMA.append(pa.field("tls_version", pa.string()))
    monkeypatch.setattr(s, "EVENT_SCHEMA", grown)
    with pytest.raises(docs_gen.DocsError, match=r"describe \['tls_version'\].*docs_gen"):
        docs_gen.render_lake_schema()


def test_a_technique_without_a_name_fails_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(docs_gen.MITRE_TECHNIQUES, "T1485")
    with pytest.raises(docs_gen.DocsError, match="T1485"):
        docs_gen.render_detectors()


def test_check_mode_names_the_stale_file_and_the_command(tmp_path: Path) -> None:
    for relative, render in docs_gen.GENERATED.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(render(), encoding="utf-8")
    stale = tmp_path / docs_gen.DETECTORS_DOC
    stale.write_text(stale.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "analytics.docs_gen", "--check", "--root", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "docs/detectors.md is out of date; run python -m analytics.docs_gen" in result.stderr
    assert "lake-schema" not in result.stderr
