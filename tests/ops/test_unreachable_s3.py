"""S3 that cannot be used at all — nothing answers, or no credentials — ends any command with one
``error:`` line naming the endpoint and what to check, exit 2, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.helpers import Shown, dead_endpoint, keytrail
from tests.publish import fixture

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def assert_one_line_error(shown: Shown, *expected: str) -> None:
    assert shown.returncode == 2, shown.text
    assert "Traceback" not in shown.text and "╭" not in shown.text, shown.text
    lines = shown.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, shown.stderr
    for text in expected:
        assert text in errors[0], errors[0]


@pytest.fixture(scope="module")
def alerts_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.build_lake(tmp_path_factory.mktemp("ops-lake")).root


def test_ingest_from_an_unreachable_endpoint(tmp_path: Path) -> None:
    endpoint = dead_endpoint()
    shown = keytrail("ingest", "s3://trail/cloudtrail", "--lake", tmp_path / "lake",
                     "--endpoint-url", endpoint, "--workers", "1")  # fmt: skip
    assert_one_line_error(shown, f"cannot reach S3 at {endpoint}", "--endpoint-url")


@pytest.mark.parametrize(
    "command",
    [
        ["detect", "--date", "2026-11-01"],
        ["report", "--date", "2026-11-01"],
        ["export", "--date", "2026-11-01", "--sink", "ocsf-file"],
        ["evaluate", "--labels", "data/samples/trail/labels.json"],
    ],
    ids=lambda command: command[0],
)
def test_a_command_on_an_s3_lake_behind_an_unreachable_endpoint(
    tmp_path: Path, command: list[str]
) -> None:
    endpoint = dead_endpoint()
    shown = keytrail(*command, "--lake", "s3://lake-bucket/lake",
                     env={"AWS_ENDPOINT_URL": endpoint,
                          "KEYTRAIL_CACHE_DIR": str(tmp_path)})  # fmt: skip
    assert_one_line_error(shown, f"cannot reach S3 at {endpoint}", "AWS_ENDPOINT_URL")


def test_export_to_an_unreachable_s3_endpoint(alerts_lake: Path) -> None:
    endpoint = dead_endpoint()
    shown = keytrail("export", "--lake", alerts_lake, "--date", fixture.DAY, "--sink", "s3",
                     "--s3-uri", "s3://siem-drop/keytrail", "--endpoint-url", endpoint)  # fmt: skip
    assert_one_line_error(shown, f"cannot reach S3 at {endpoint}")


def test_ingest_without_credentials(tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    shown = keytrail("ingest", f"s3://{bucket}/cloudtrail", "--lake", tmp_path / "lake",
                     "--endpoint-url", s3_endpoint, "--workers", "1",
                     env=NO_CREDENTIALS)  # fmt: skip
    assert_one_line_error(shown, "no AWS credentials found", "AWS_PROFILE")


def test_an_s3_lake_without_credentials(tmp_path: Path, s3_endpoint: str) -> None:
    env = {**NO_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "KEYTRAIL_CACHE_DIR": str(tmp_path)}
    shown = keytrail("detect", "--lake", "s3://lake-bucket/lake", "--date", "2026-11-01", env=env)
    assert_one_line_error(shown, "no AWS credentials found")
