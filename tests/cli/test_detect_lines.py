"""detect's alert lines say what each alert is about: a model alert's reason speaks of "this
key" and "this actor", so its line names them (short forms)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from analytics.detect.incidents import short_arn
from analytics.detect.model import DETECTOR_ID
from flows.cli import app
from tests.flows.conftest import SAMPLES


def test_model_alert_lines_name_their_key_and_actor(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(SAMPLES), "--lake", str(lake), "--json"])
    assert ingested.exit_code == 0, ingested.output
    day = sorted(p.name.split("=")[1] for p in (lake / "events").iterdir())[-2]
    written = runner.invoke(app, ["detect", "--lake", str(lake), "--date", day])
    assert written.exit_code == 0, written.output
    alerts = pl.read_parquet(lake / "alerts" / f"event_date={day}" / "alerts.parquet")
    model = alerts.filter(pl.col("detector") == DETECTOR_ID, pl.col("suppressed_by").is_null())
    assert model.height > 0, "the sample's last full day should carry a model alert"
    shown = runner.invoke(app, ["detect", "--lake", str(lake), "--date", day, "--dry-run"],
                          env={"COLUMNS": "400"})  # fmt: skip
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if f"{DETECTOR_ID} (" in line]
    assert lines, shown.output
    for row in model.iter_rows(named=True):
        named = f"{DETECTOR_ID} ({short_arn(row['key_arn'])} by {short_arn(row['actor'])}):"
        assert any(named in line for line in lines), (named, shown.output)
