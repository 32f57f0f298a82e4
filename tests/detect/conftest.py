"""A lake built once from the embedded sample trail (14 days), shared by the detection tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.ingest import IngestOptions, ingest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "trail"


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory) -> LocalLake:
    lake = LocalLake(tmp_path_factory.mktemp("sample") / "lake")
    ingest(LocalSource(SAMPLES), lake, IngestOptions(workers=1))
    return lake


@pytest.fixture
def lake_copy(sample_lake: LocalLake, tmp_path: Path) -> LocalLake:
    """A private copy for tests that write alerts or features."""
    target = tmp_path / "lake"
    shutil.copytree(sample_lake.root, target)
    return LocalLake(target)
