"""The README's reliability table cites tests that exist: a guarantee is only as good as its test."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_file_the_readme_cites_exists() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(tests/[\w/]+\.py)`", readme))
    assert cited, "the README's reliability table names its tests"
    missing = sorted(path for path in cited if not (REPO / path).is_file())
    assert missing == [], f"README cites tests that do not exist: {missing}"
