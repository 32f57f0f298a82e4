"""``make bench`` end to end on a tiny tree: it runs, every contender reads the same events,
and the figures it prints are the ones it writes down. (Nothing here looks at the times.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_runs_every_contender_on_the_same_events(tmp_path: Path) -> None:
    # Sizes: each contender's time here is mostly its process starting, so a thousand events
    # (some 600 files) test as much as more would; two rounds, for the medians over rounds; eight
    # days for detect, the scored one and the seven of history the model needs.
    args = [sys.executable, "-m", "bench", "--cache", str(tmp_path), "--events", "1000",
            "--rounds", "2", "--detect-days", "8", "--detect-events-per-day", "500"]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    ingest = results["ingest"]
    assert len(ingest["rounds"]) == 2
    assert ingest["events_written"] == ingest["events"] >= 1000  # at least the events asked for
    for one_round in ingest["rounds"]:
        assert int(one_round["peer"]["output"]) == ingest["events"]
        assert one_round["floor"]["output"].split()[0] == str(ingest["events"])
    assert f"{ingest['ingest_vs_floor']:.2f} (" in run.stdout
    assert f"{ingest['ingest_vs_duckdb_tuned']:.2f}× (" in run.stdout
    assert ingest["scanner_fallback_share"] == 0.0  # the generator writes nothing it declines
    assert "0.0% fell back to the reference decoder" in run.stdout
    start_up = ingest["scanner_first_call_seconds"]
    assert start_up["compile"] > 0 and start_up["cached"] > 0
    assert all(json.loads(r["reference"]["output"])["events_written"] == ingest["events"]
               for r in ingest["rounds"])  # fmt: skip
    runners = ingest["runners_vs_floor"]  # the flow's runners over the same driver
    assert set(runners) == {"read tasks, threads", "read tasks, Dask 1 worker",
                            "read tasks, Dask 2 workers"}  # fmt: skip
    for role, ratio in runners.items():
        assert f"{role} / floor (speed): {ratio:.2f} (" in run.stdout
        assert all(int(r[role]["output"]) == ingest["events"] for r in ingest["rounds"])
    detect = results["detect"]["summary"]
    assert detect["history_days"] == 7  # the last day of the 8-day lake, scored on the 7 before
    assert "rules" in detect["timings"] and "model" in detect["timings"]
