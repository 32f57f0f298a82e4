"""The documents that describe incidents say what the code does."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from analytics.config import load
from analytics.detect.incidents import IncidentSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_example_configuration_shows_every_incident_setting_at_its_default() -> None:
    example = tomllib.loads((REPO / "docs" / "keytrail.example.toml").read_text("utf-8"))
    defaults = dataclasses.asdict(IncidentSettings())
    assert example["incidents"] == defaults
    assert load(REPO / "docs" / "keytrail.example.toml").incidents == IncidentSettings()


def test_the_configuration_guide_lists_every_incident_setting_with_its_default() -> None:
    guide = (REPO / "docs" / "configuration.md").read_text("utf-8")
    for name, value in dataclasses.asdict(IncidentSettings()).items():
        assert f"| `[incidents]` | `{name}` | `{value}` |" in guide


def test_readme_and_design_describe_incidents() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    what = readme.split("## What it does", 1)[1].split("\n## ", 1)[0]
    assert "LAKE/incidents/event_date=D/incidents.parquet" in what
    design = (REPO / "docs" / "design.md").read_text("utf-8")
    assert "LAKE/incidents/" in design.split("## Data flow", 1)[1].split("\n## ", 1)[0]
