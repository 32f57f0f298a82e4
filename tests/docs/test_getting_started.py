"""docs/getting-started.md works as written: its commands run, in order, in a copy of the repo.

The doc marks the commands a new user types with fenced blocks whose info string is ``sh test``
(the local path) or ``sh test-s3`` (a real trail bucket). This test copies the working tree the
way a clone would have it, runs every marked block in one shell session, and checks what the
doc promises came out. The S3 step runs verbatim against a local S3 server (moto) holding the
sample trail: ``AWS_ENDPOINT_URL`` sends the AWS SDK there, as it would to any S3-compatible
store, so the doc needs no test-only options.

Two things differ from a fresh machine, both to keep the test offline and the shared virtual
environment untouched: the copy links the project's ``.venv`` instead of creating one, and
``make`` is told (``-o``) that the environment is already set up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.docs.shell_blocks import blocks, explain, run_blocks

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "getting-started.md"
SAMPLES = REPO / "data" / "samples" / "trail"
STAMP = ".venv/.keytrail-installed"


def fresh_copy(target: Path) -> Path:
    """The working tree as a clone would hold it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # keeps mtimes, so make sees nothing changed
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


def upload_trail(endpoint: str, bucket: str, prefix: str) -> None:
    s3: Any = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    files = [p for p in SAMPLES.rglob("*") if p.is_file() and "/CloudTrail/" in p.as_posix()]

    def put(path: Path) -> None:
        key = f"{prefix}/{path.relative_to(SAMPLES).as_posix()}" if prefix else path.name
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))


def test_the_doc_marks_the_commands_of_each_step() -> None:
    text = DOC.read_text(encoding="utf-8")
    local = "\n".join(body for _, body in blocks(text, ("test",)))
    remote = "\n".join(body for _, body in blocks(text, ("test-s3",)))
    assert "make demo" in local and "jupyter execute notebooks/" in local
    for stage in ("keytrail ingest", "keytrail detect", "keytrail report"):
        assert stage in remote


@pytest.mark.slow
def test_following_getting_started_works(tmp_path: Path, s3_endpoint: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    trail = re.search(r"^TRAIL=s3://([^/\s]+)/?(\S*)", text, re.MULTILINE)
    assert trail, "the S3 step sets TRAIL=s3://bucket[/prefix]"
    upload_trail(s3_endpoint, trail.group(1), trail.group(2))
    clone = fresh_copy(tmp_path / "keytrail")
    result = run_blocks(
        DOC,
        ("test", "test-s3"),
        cwd=clone,
        env={"AWS_ENDPOINT_URL": s3_endpoint, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "MPLBACKEND": "Agg"},
        prelude=f'make() {{ command make -o {STAMP} "$@"; }}',
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    # What the doc promises is there:
    for day in ("2026-11-11", "2026-11-12", "2026-11-13", "2026-11-14"):  # the demo's span
        assert (clone / "demo-lake" / "reports" / day / "report.html").is_file()
    assert "Next (in the virtualenv" in result.stdout  # the demo's closing summary
    assert "would raise" in result.stdout  # the dry run of 2026-11-10
    assert (clone / "lake" / "alerts" / "event_date=2026-11-14" / "alerts.parquet").is_file()
    assert (clone / "lake" / "reports" / "2026-11-14" / "report.html").is_file()
    assert "events written" in result.stdout and "17,111" in result.stdout
    assert not list((clone / "notebooks").glob("*.nbconvert.ipynb"))
