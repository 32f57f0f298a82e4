"""The README quotes the demo's closing summary; the quote must be what the demo prints.

The summary is computed from the lake alone (:func:`flows.demo.summary_lines`), so it is
rendered here from the session's sample lake scored the way the demo scores it — oldest day
first, as the nightly flow then the backfill flow do, through the same
:func:`analytics.detect.scoring.run` the flows call — rather than by running the whole demo.
"""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.adapters.lake import LocalLake
from analytics.detect import scoring as detect
from flows import demo
from tests.conftest import REPO

LAST = dt.date(2026, 11, 14)


# The tests of this module share its module fixture (the demo's four scored days): one xdist_group
# keeps them on one worker, which builds it once (--dist loadgroup schedules ungrouped tests one
# by one, on either worker).
pytestmark = pytest.mark.xdist_group("demo-readme")


@pytest.fixture(scope="module")
def demo_summary(tmp_path_factory: pytest.TempPathFactory, sample_lake: LocalLake) -> str:
    import shutil

    lake = LocalLake(tmp_path_factory.mktemp("readme") / "lake")
    shutil.copytree(sample_lake.root, lake.root)
    span = demo.scored_span(lake, LAST, demo.DEFAULT_DAYS)
    for day in span.days:
        detect.run(lake, day)
    return demo.rendered(demo.summary_lines(lake, span, demo.README_LAKE))


def test_the_readme_quotes_what_the_demo_prints(demo_summary: str) -> None:
    quoted = demo.readme_block((REPO / "README.md").read_text(encoding="utf-8"))
    assert quoted == demo_summary, (
        "README.md's demo output is out of date: run `keytrail demo --update-readme` (or "
        "`make demo` then compare) and commit the result"
    )


def test_the_quote_fits_a_terminal(demo_summary: str) -> None:
    lines = demo_summary.splitlines()
    assert len(lines) <= 25
    assert max(len(line) for line in lines) <= demo.WIDTH
    assert "2026-11-11" in lines[1] and "2026-11-14" in demo_summary


def test_rewriting_the_block_changes_only_the_block() -> None:
    text = f"intro\n{demo.README_START}\n```text\nold\n```\n{demo.README_END}\nrest\n"
    rewritten = demo.with_block(text, "new line\n")
    assert rewritten == (
        f"intro\n{demo.README_START}\n```text\nnew line\n```\n{demo.README_END}\nrest\n"
    )
    assert demo.readme_block(rewritten) == "new line\n"
    with pytest.raises(ValueError, match="demo-output"):
        demo.readme_block("no markers here")
