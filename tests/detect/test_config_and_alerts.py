"""keytrail.toml and the alert layer: validation, suppressions, merging, stable IDs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from analytics.adapters.lake import LocalLake
from analytics.config import Config, ConfigError, Suppression, load, parse
from analytics.detect.alerts import DetectorInfo, assemble
from analytics.detect.detectors.base import FINDING_COLUMNS
from analytics.detect.scoring import run
from analytics.lake import schema as s
from tests.ingest.helpers import run_cli

DOCS = Path(__file__).resolve().parents[2] / "docs"
INFO = DetectorInfo("KMS.Test", "A test", "medium", ("T1485",), "look")
DAY = dt.date(2026, 11, 14)


def _finding(
    start: dt.datetime, reason: str = "r", actor: str = "a", ids: list[str] | None = None
) -> dict:
    return {s.KEY_ARN: "k", s.ACTOR: actor, s.WINDOW_START: start,
            s.WINDOW_END: start + dt.timedelta(hours=1), s.REASON: reason,
            s.EVIDENCE_EVENT_IDS: ids or ["e1"], s.EVIDENCE_COUNT: len(ids or ["e1"])}  # fmt: skip


def _findings(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={k: FINDING_COLUMNS[k] for k in rows[0]})


def _assemble(frame: pl.DataFrame, config: Config | None = None) -> pl.DataFrame:
    empty = pl.DataFrame(schema={s.EVENT_ID: pl.String, s.EVENT_TIME: pl.Datetime("us", "UTC"),
                                 s.KEY_ARN: pl.String, s.ACTOR: pl.String})  # fmt: skip
    return assemble([(INFO, frame)], DAY, empty, config or Config(), DAY).alerts


def test_the_documented_example_configuration_is_valid() -> None:
    config = load(DOCS / "keytrail.example.toml")
    assert config.baseline_window_days == 35
    assert config.suppressions[0].owner


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[baseline]\nwindow_days = 3", "at least 7"),
        ("[baseline]\nwindow_dayz = 30", "unknown key"),
        ("[modle]\nx = 1", "unknown section"),
        ('[detectors."KMS.Nope"]\nx = 1', "unknown detector"),
        ('[detectors."KMS.FailedDecryptBurst"]\nmin_failures = "many"', "min_failures must be"),
        (
            '[[suppression]]\nid = "x"\nowner = "o"\nreason = "r"\nexpires = 2027-01-01',
            "match at least one",
        ),
        (
            '[[suppression]]\nid = "x"\nowner = "o"\nactor = "a"\nexpires = 2027-01-01',
            "reason is required",
        ),
        (
            '[[suppression]]\nid = "x"\nowner = "o"\nreason = "r"\nactor = "a"\nexpires = "soon"',
            "expires must be a date",
        ),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keytrail.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_cli_reports_a_bad_config_clearly(tmp_path: Path) -> None:
    path = tmp_path / "keytrail.toml"
    path.write_text("[baseline]\nwindow_days = 3\n")
    result = run_cli(
        "detect",
        "--lake",
        str(tmp_path),
        "--date",
        "2026-11-14",
        "--config",
        str(path),
        check=False,
    )
    assert result.returncode == 2
    assert "window_days must be at least 7" in result.stderr


def test_findings_in_one_window_merge_into_one_alert() -> None:
    t0 = dt.datetime(2026, 11, 14, 10, tzinfo=dt.UTC)
    alerts = _assemble(
        _findings(_finding(t0, ids=["a"]), _finding(t0 + dt.timedelta(hours=3), ids=["b"]))
    )
    (alert,) = alerts.iter_rows(named=True)
    assert alert[s.EVIDENCE_EVENT_IDS] == ["a", "b"]
    assert alert[s.EVIDENCE_COUNT] == 2
    assert "and 1 more like it" in alert[s.REASON]
    assert alert[s.WINDOW_END] == t0 + dt.timedelta(hours=4)


def test_merge_window_is_configurable() -> None:
    t0 = dt.datetime(2026, 11, 14, 10, tzinfo=dt.UTC)
    frame = _findings(_finding(t0), _finding(t0 + dt.timedelta(hours=3)))
    assert _assemble(frame, Config(merge_window_hours=1)).height == 2


def test_alert_id_is_stable_when_late_events_extend_a_window() -> None:
    t0 = dt.datetime(2026, 11, 14, 10, tzinfo=dt.UTC)
    first = _assemble(_findings(_finding(t0)))
    later = _assemble(_findings(_finding(t0), _finding(t0 + dt.timedelta(hours=5))))
    assert first.get_column(s.ALERT_ID).to_list() == later.get_column(s.ALERT_ID).to_list()


def test_different_entities_get_different_ids() -> None:
    t0 = dt.datetime(2026, 11, 14, 10, tzinfo=dt.UTC)
    alerts = _assemble(_findings(_finding(t0, actor="a"), _finding(t0, actor="b")))
    assert alerts.get_column(s.ALERT_ID).n_unique() == 2


def test_suppressions_mark_alerts_and_expired_ones_stop_applying() -> None:
    t0 = dt.datetime(2026, 11, 14, 10, tzinfo=dt.UTC)
    live = Suppression("live", "o", "r", dt.date(2027, 1, 1), actor="a*")
    expired = Suppression("old", "o", "r", dt.date(2026, 1, 1), actor="b")
    config = Config(suppressions=(live, expired))
    empty = pl.DataFrame(schema={s.EVENT_ID: pl.String, s.EVENT_TIME: pl.Datetime("us", "UTC"),
                                 s.KEY_ARN: pl.String, s.ACTOR: pl.String})  # fmt: skip
    result = assemble([(INFO, _findings(_finding(t0, actor="alpha"), _finding(t0, actor="b")))],
                      DAY, empty, config, DAY)  # fmt: skip
    marks = dict(result.alerts.select(s.ACTOR, s.SUPPRESSED_BY).iter_rows())
    assert marks == {"alpha": "live", "b": None}
    assert result.suppressed == 1
    assert [x.id for x in result.expired_suppressions] == ["old"]


def test_suppressed_alerts_are_counted_not_dropped(tmp_path: Path, lake_copy: LocalLake) -> None:
    everything = Suppression("all-root", "sec", "test", dt.date(2099, 1, 1), detector="KMS.*")
    result = run(lake_copy, DAY, Config(suppressions=(everything,)))
    assert result.summary["alerts"] == 0
    assert result.summary["suppressed"] == result.alerts.height > 0


def test_parse_accepts_an_empty_document() -> None:
    assert parse({}) == Config()
