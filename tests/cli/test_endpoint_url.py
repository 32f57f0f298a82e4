"""Every command that takes --lake reaches an s3:// lake on an S3-compatible store through
--endpoint-url alone (no AWS_ENDPOINT_URL* variable), here a moto server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.flows.conftest import SAMPLES, copy_days

DAY = "2026-11-13"


def test_every_lake_command_takes_the_endpoint_option(
    s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("KEYTRAIL_CACHE_DIR", str(tmp_path / "cache"))
    trail = copy_days(["2026-11-12", DAY, "2026-11-14"], tmp_path / "trail")
    lake = f"s3://{bucket}/lake"
    commands = [
        ["ingest", trail, "--workers", "1"],
        ["detect", "--date", DAY],
        ["report", "--date", DAY],
        ["export", "--date", DAY, "--sink", "ocsf-file"],
        ["lake", "check"],
        ["evaluate", "--labels", SAMPLES / "labels.json"],
    ]
    for command in commands:
        args = [str(part) for part in command] + ["--lake", lake, "--endpoint-url", s3_endpoint]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, f"{command[0]}: {result.output}"
    result = CliRunner().invoke(app, ["lake", "check", "--lake", lake, "--endpoint-url",
                                      s3_endpoint, "--json"])  # fmt: skip
    assert '"events": 0' not in result.output
