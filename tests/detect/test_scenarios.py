"""Detection quality on generated organisations: every attack found, each one story to triage.

Five seeds never used for tuning (1009, 2027, 3001, 4099, 5051), 35 days each. Each tree is
generated and ingested, and its last eight days — the seven days the generator plants attacks
and decoys on, and the day before — are scored day by day as the nightly job would, then
compared with labels.json. The targets are an analyst's: every malicious scenario found; at
most 3 things (incidents, plus alerts outside any incident) to triage for any scenario; no decoy
in a high or critical alert or incident; at most 3 high or critical incidents or alerts that no
attack explains over the scored days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.detect.evaluate import evaluate, load_labels
from analytics.detect.scoring import run
from analytics.generator import generate_tree
from analytics.ingest.pipeline import IngestOptions, ingest

DAYS = 35
EVENTS_PER_DAY = 2500
SCORED_DAYS = 8
UNTUNED_SEEDS = [1009, 2027, 3001, 4099, 5051]
MAX_TO_TRIAGE = 3
MAX_HIGH_OUTSIDE_ATTACKS = 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", UNTUNED_SEEDS)
def test_every_attack_is_one_story_and_no_decoy_pages(tmp_path: Path, seed: int) -> None:
    tree, lake = tmp_path / "trail", LocalLake(tmp_path / "lake")
    generate_tree(tree, days=DAYS, events_per_day=EVENTS_PER_DAY, seed=seed, workers=1)
    ingest(LocalSource(tree), lake, IngestOptions(workers=1))
    labels = load_labels(tree / "labels.json")
    start = dt.date.fromisoformat(labels["start"])
    for offset in range(DAYS - SCORED_DAYS, DAYS):
        run(lake, start + dt.timedelta(days=offset))
    report = evaluate(lake, labels)
    malicious = [row for row in report["scenarios"] if row["malicious"]]
    assert len(malicious) >= 14, "the generator plants every attack shape"
    assert report["missed"] == [] and report["recall"] == 1.0
    triage = {row["id"]: row["to_triage"] for row in report["scenarios"]}
    assert max(triage.values()) <= MAX_TO_TRIAGE, triage
    assert report["decoys_with_high_alerts"] == []
    assert report["decoys_in_high_incidents"] == []
    assert report["high_outside_attacks"] <= MAX_HIGH_OUTSIDE_ATTACKS, report
    assert len(report["scored_days"]) == SCORED_DAYS
    assert report["precision"] >= 0.8, report
