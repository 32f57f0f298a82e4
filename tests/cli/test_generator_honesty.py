"""A generated tree too short for the labelled scenarios says so, and evaluate does not score it
as 100% of nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from analytics.generator.scenarios import MIN_DAYS_FOR_SCENARIOS
from flows.cli import app


def _generate(out: Path, days: int) -> str:
    result = CliRunner().invoke(
        app, ["generate", str(out), "--days", str(days), "--events-per-day", "10", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_short_tree_warns_and_its_labels_say_why(tmp_path: Path) -> None:
    shown = _generate(tmp_path / "trail", MIN_DAYS_FOR_SCENARIOS - 1)
    assert (
        f"warning: --days {MIN_DAYS_FOR_SCENARIOS - 1} is under {MIN_DAYS_FOR_SCENARIOS}" in shown
    )
    labels = json.loads((tmp_path / "trail" / "labels.json").read_text())
    assert labels["scenarios"] == []
    assert labels["scenarios_planted"] is False
    assert "no attacks or decoys were planted" in labels["scenarios_missing"]


def test_a_tree_long_enough_plants_scenarios_without_a_warning(tmp_path: Path) -> None:
    shown = _generate(tmp_path / "trail", MIN_DAYS_FOR_SCENARIOS)
    assert "warning:" not in shown
    labels = json.loads((tmp_path / "trail" / "labels.json").read_text())
    assert any(scenario["malicious"] for scenario in labels["scenarios"])
    assert "scenarios_planted" not in labels


def test_evaluate_has_nothing_to_score_without_scenarios(tmp_path: Path) -> None:
    _generate(tmp_path / "trail", 3)
    (tmp_path / "lake").mkdir()
    labels = tmp_path / "trail" / "labels.json"
    for extra in ([], ["--json"]):
        result = CliRunner().invoke(
            app, ["evaluate", "--lake", str(tmp_path / "lake"), "--labels", str(labels), *extra]
        )
        assert result.exit_code == 2, result.output
        assert "error: labels" in result.output
        assert "no labelled scenarios: nothing to score" in result.output
        assert "100%" not in result.output and "recall" not in result.output
