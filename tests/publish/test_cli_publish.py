"""``keytrail report`` and ``keytrail export`` end to end, through the typer app."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from typer.testing import CliRunner

from analytics.adapters.lake import LocalLake
from flows.cli_publish import register
from flows.sinks import HEC_TOKEN_ENV
from tests.publish.conftest import Listener
from tests.publish.helpers import HEC_TOKEN as TOKEN
from tests.publish.helpers import copy_lake

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="rich")

    @app.callback()
    def root() -> None:
        """keytrail (test app)."""

    register(app)
    return app


@pytest.fixture
def lake(fixture_lake: LocalLake, tmp_path: Path) -> LocalLake:
    return copy_lake(fixture_lake, tmp_path / "lake")


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(_app(), [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.mark.parametrize("command", ["report", "export"])
def test_help_has_an_example(command: str) -> None:
    result = _run(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"keytrail {command}" in result.output


def test_report_writes_files_and_prints_a_json_summary(lake: LocalLake) -> None:
    result = _run("report", "--lake", lake.root, "--date", "2026-11-09", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["date"], summary["alerts"], summary["rotation_overdue"]) == ("2026-11-09", 5, 1)
    for path in summary["files"].values():
        assert Path(path).exists()
    assert Path(summary["files"]["report.html"]).parent == lake.root / "reports" / "2026-11-09"


def test_report_without_events_for_the_day_fails_clearly(lake: LocalLake) -> None:
    result = _run("report", "--lake", lake.root, "--date", "2026-12-01")
    assert result.exit_code == 2
    assert "no events for 2026-12-01" in result.output


def test_report_with_inventory_asks_the_kms_api(lake: LocalLake, s3_endpoint: str) -> None:
    region = "ca-central-1"
    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name=region)
    arn = kms.create_key(Description="cli-inventory")["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=arn)
    result = _run("report", "--lake", lake.root, "--date", "2026-11-09", "--inventory",
                  "--region", region, "--endpoint-url", s3_endpoint, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert any(note.startswith(f"KMS inventory of {region}") for note in summary["notes"])
    assert summary["keys_in_inventory"] == 10  # nine keys from the lake, one from the API
    keys = (lake.root / "reports" / "2026-11-09" / "keys.csv").read_text()
    assert f"{arn}," in keys and "kms-api" in keys


def test_export_ocsf_file_then_rerun_sends_nothing(lake: LocalLake) -> None:
    first = _run(
        "export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "ocsf-file", "--json"
    )
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["sent"] == 5
    again = json.loads(
        _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "ocsf-file",
             "--json").stdout
    )  # fmt: skip
    assert (again["sent"], again["already_sent"], again["suppressed_not_exported"]) == (0, 5, 1)


def test_export_without_alerts_fails_clearly(lake: LocalLake) -> None:
    result = _run("export", "--lake", lake.root, "--date", "2026-11-08", "--sink", "ocsf-file")
    assert result.exit_code == 2 and "run keytrail detect first" in result.output


def test_hec_export_needs_a_token(lake: LocalLake, listener: Listener) -> None:
    result = _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "splunk-hec",
                  "--hec-url", listener.url, env={HEC_TOKEN_ENV: ""})  # fmt: skip
    assert result.exit_code == 2 and HEC_TOKEN_ENV in result.output
    assert listener.requests == []


def _everything_written(lake: LocalLake) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(lake.root.rglob("*")) if p.is_file())


def test_hec_token_never_appears_in_output_or_the_lake(lake: LocalLake, listener: Listener) -> None:
    args = ("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "splunk-hec",
            "--hec-url", listener.url, "--hec-acks", "off")  # fmt: skip
    ok = _run(*args, env={HEC_TOKEN_ENV: TOKEN})
    assert ok.exit_code == 0, ok.output
    as_json = _run(*args, "--json", env={HEC_TOKEN_ENV: TOKEN})
    listener.responses = [(401, f'{{"text":"Invalid token {TOKEN}","code":4}}'.encode(), {})]
    (lake.root / "_state" / "exports" / "splunk-hec.parquet").unlink()
    refused = _run(*args, env={HEC_TOKEN_ENV: TOKEN})
    refused_json = _run(*args, "--json", env={HEC_TOKEN_ENV: TOKEN})
    assert refused.exit_code == 2 and "rejected the token" in refused.output
    assert json.loads(refused_json.stdout)["retryable"] is False
    assert listener.requests[0]["headers"]["Authorization"] == f"Splunk {TOKEN}"
    for result in (ok, as_json, refused, refused_json):
        assert TOKEN not in result.output
        assert TOKEN not in (result.stderr or "")
    assert TOKEN.encode() not in _everything_written(lake)


def test_hec_token_from_a_prefect_secret_block(
    lake: LocalLake,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.blocks.system import Secret

    class Stored:
        def get(self) -> str:
            return TOKEN

    loaded: list[str] = []

    def load(name: str, *args: Any, **kwargs: Any) -> Stored:
        loaded.append(name)
        return Stored()

    monkeypatch.setattr(Secret, "load", load)
    result = _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "splunk-hec",
                  "--hec-url", listener.url, "--hec-token-block", "splunk-hec-token", "--json",
                  "--hec-acks", "off",
                  env={HEC_TOKEN_ENV: ""})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert loaded == ["splunk-hec-token"]
    assert listener.requests[0]["headers"]["Authorization"] == f"Splunk {TOKEN}"
    assert TOKEN not in result.output


def test_export_exit_code_1_when_the_collector_keeps_failing(
    lake: LocalLake,
    listener: Listener,
) -> None:
    listener.responses = [(503, b"", {})]
    result = _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "splunk-hec",
                  "--hec-url", listener.url, "--max-attempts", "2", env={HEC_TOKEN_ENV: TOKEN})  # fmt: skip
    assert len(listener.requests) == 2
    assert result.exit_code == 1
    assert "try again later" in result.output


def test_security_hub_export_through_the_cli(lake: LocalLake, s3_endpoint: str) -> None:
    client = boto3.client("securityhub", endpoint_url=s3_endpoint, region_name="us-west-2")
    with contextlib.suppress(client.exceptions.ResourceConflictException):
        client.enable_security_hub()
    result = _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "securityhub",
                  "--region", "us-west-2", "--endpoint-url", s3_endpoint, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sent"] == 5


def test_s3_export_needs_an_s3_uri(lake: LocalLake) -> None:
    result = _run("export", "--lake", lake.root, "--date", "2026-11-09", "--sink", "s3")
    assert result.exit_code == 2 and "--s3-uri" in result.output


def test_export_help_states_the_hec_defaults_in_force() -> None:
    from analytics.publish.export.settings import HecSettings

    defaults = HecSettings()
    text = " ".join(_run("export", "--help", env={"COLUMNS": "200"}).output.split())
    for stated in (f"sourcetype (default: {defaults.sourcetype})",
                   f"acknowledgements (default: {defaults.ack_timeout_seconds:g})",
                   f"bytes per request (default: {defaults.max_batch_bytes})",
                   f"timeouts (default: {defaults.attempts})", "unconfirmed (default: on)"):  # fmt: skip
        assert stated in text
