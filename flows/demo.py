"""``keytrail demo``: the product on the embedded sample trail, ending on what it found.

The demo runs the nightly flow for the first day it scores (ingesting the trail up to that day,
so the day has its baseline window), then the backfill flow over the days after it up to the
sample's last — the same stages a real deployment runs, oldest day first, not a second
pipeline. Which days are scored is read from the trail's extent and checked against the lake:
the last ``--days`` days that have events, less those with under the model's minimum history
(:data:`analytics.detect.model.ModelSettings.min_history_days`). The trail's labels never decide it:
they are the generator's answer key, and a real trail has none.

It ends on a closing summary (:func:`summary_lines`): one line per scored day, one per
incident, and three things to try next. The summary is computed from the lake alone, so the
README's copy of it can be rendered from any lake scored the same way, and
``tests/docs/test_demo_readme.py`` fails when the README and the demo disagree;
``keytrail demo --update-readme`` rewrites that copy.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

from analytics.adapters.lake import LocalLake
from analytics.config import Config
from analytics.detect.baselines import window
from analytics.detect.incidents import triage_count
from analytics.lake import schema as s
from flows.cli_incidents import fit, one_line
from flows.console import fail, plain, terminal

DEFAULT_DAYS = 4
"""Days the demo scores, ending with the sample's last: its attacks fall on the last four."""
WIDTH = 80
"""Columns the closing summary is written for."""
INCIDENT_LINES = 8
"""Incidents named one line each; the rest are counted (each report lists them all)."""

README = Path(__file__).resolve().parent.parent / "README.md"
README_START = "<!-- demo-output:start (keytrail demo --update-readme rewrites this block) -->"
README_END = "<!-- demo-output:end -->"
README_LAKE = "demo-lake"
"""The lake as the README names it: the default ``--lake`` of ``keytrail demo``."""

NOTEBOOK = "notebooks/02_investigate_alert.ipynb"
"""The notebook the summary suggests: by default it opens the last day's most severe incident."""
OWN_TRAIL = "keytrail run --source s3://my-trail-bucket/cloudtrail --lake ./lake"
"""The command the summary suggests for a real trail, exactly as the README's quick start."""


@dataclass(frozen=True)
class Span:
    """The days the demo scores, and the days asked for that were left out for lack of history."""

    days: list[dt.date]
    too_early: list[dt.date]


def scored_span(lake: LocalLake, last: dt.date, days: int, config: Config | None = None) -> Span:
    """The last ``days`` days with events up to ``last``, keeping before ``last`` only those
    with at least the model's minimum history in their baseline window: without it the model
    stays silent, and the demo would show a rule-only day as if it were the product. ``last``
    itself is kept whatever its history, because the nightly run scores it (and says when the
    model is silent)."""
    return plan_span(lake.event_dates(), last, days, config)


def plan_span(
    dates: Sequence[dt.date], last: dt.date, days: int, config: Config | None = None
) -> Span:
    """:func:`scored_span` over the days ``dates`` that hold (or will hold) events."""
    config = config or Config()
    present = sorted(day for day in dates if day <= last)
    wanted = present[-days:] if days > 0 else []
    kept: list[dt.date] = []
    early: list[dt.date] = []
    for day in wanted:
        first, before = window(day, config.baseline_window_days)
        history = sum(1 for d in present if first <= d <= before)
        enough = day == last or history >= config.model.min_history_days
        (kept if enough else early).append(day)
    return Span(kept, early)


# --- running it ---------------------------------------------------------------------------------


def run_demo(
    lake: Path,
    samples: Path,
    days: int = DEFAULT_DAYS,
    ephemeral: bool = True,
    readme: Path | None = None,
) -> list[str]:
    """Build a fresh lake from ``samples``, score its last ``days`` days, print the summary.

    ``ephemeral``: use Prefect's temporary local API even if PREFECT_API_URL is set, so the
    demo never depends on a server being up. ``readme``: also rewrite that README's copy of
    the summary. Returns the summary's lines (rich markup).
    """
    from flows.cli_orchestrate import (
        _TTL_HOURS,
        _call,
        _check_lake,
        _quiet_prefect_defaults,
        sample_days,
    )

    if not samples.is_dir():
        raise fail(f"sample trail {samples} not found")
    _check_lake(lake, _TTL_HOURS)
    if lake.exists():
        if not (lake / "_state" / "objects.parquet").exists() and any(lake.iterdir()):
            raise fail(f"{lake} exists and is not a keytrail lake; choose another --lake")
        shutil.rmtree(lake)
    first, last = sample_days(samples)
    _quiet_prefect_defaults()
    import logging

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.backfill import backfill
    from flows.nightly import nightly

    # The flow's own log lines carry the counts; one "Finished" line per partition does not help
    # someone trying the tool (the Prefect UI still shows every task run's state).
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    common: dict[str, Any] = {"source": str(samples), "lake": str(lake), "sinks": ["ocsf-file"]}

    def score() -> Span:
        # Oldest first, as a deployment would have scored them night after night: the nightly
        # run ingests the trail up to the first scored day, the backfill the rest, so each day's
        # incidents can link to the alerts of the days before it.
        trail = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        planned = plan_span(trail, last, days)
        _call(nightly, date=planned.days[0], ingest_from=first, **common)
        if len(planned.days) > 1:
            _call(backfill, start=planned.days[1], end=last, **common)
        return scored_span(LocalLake(lake), last, days)

    if ephemeral:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            span = score()
    else:
        span = score()
    # The temporary API stops at exit, after the summary; its "Stopping temporary server" line
    # (logger "prefect", INFO) would otherwise be the last thing printed.
    logging.getLogger("prefect").setLevel(logging.WARNING)
    if readme is not None:
        written = update_readme(LocalLake(lake), span, readme)
        terminal(stderr=True).print(f"updated {plain(str(written))}", highlight=False)
    lines = summary_lines(LocalLake(lake), span, str(lake))
    print_lines(terminal(), lines)
    return lines


# --- the closing summary ------------------------------------------------------------------------


def _counted(count: int, noun: str) -> str:
    return f"{count:>3} {noun}{'' if count == 1 else 's'}".ljust(len(noun) + 5)


def _day_line(lake: LocalLake, day: dt.date) -> str:
    """Alerts, incidents and things to triage on ``day``, as ``keytrail detect`` counts them."""
    from analytics.detect import scoring as detect  # the query engine: not for every command

    alerts = detect.read_alerts(lake, day)
    found = detect.read_incidents(lake, day)
    live = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null()).height
    return (
        f"  {day} {_counted(live, 'alert')} {_counted(found.height, 'incident')} "
        f"{triage_count(found, alerts):>3} to triage"
    )


def _incidents(lake: LocalLake, span: Span) -> dict[dt.date, list[dict[str, Any]]]:
    """The incidents of the scored days, each once under its latest day (one that goes on past
    midnight is written again each day), most severe first — as ``analytics.api`` reads them."""
    from analytics import api

    found = api.incidents(api.open_lake(lake.root), span.days[0], span.days[-1])
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in found.iter_rows(named=True):
        by_day.setdefault(row[s.EVENT_DATE], []).append(row)
    return by_day


def summary_lines(lake: LocalLake, span: Span, shown_lake: str) -> list[str]:
    """The demo's closing summary (rich markup, escaped): each scored day with its incidents,
    then three next steps. ``shown_lake`` is the lake as the user named it, so the report's path
    can be pasted; nothing here depends on the host or the run's timing."""
    if not span.days:
        return [f"No day in {plain(shown_lake)} has enough history to score."]
    heading = (
        f"Scored the last {len(span.days)} days in {shown_lake} (each against the days before it):"
    )
    lines = [plain(fit(heading, WIDTH))]
    if span.too_early:
        lines.append(
            f"  ({len(span.too_early)} earlier day(s) left out: under "
            f"{Config().model.min_history_days} days of history)"
        )
    incidents = _incidents(lake, span)
    shown = 0
    for day in span.days:
        lines.append(_day_line(lake, day))
        for row in incidents.get(day, []):
            if shown < INCIDENT_LINES:
                lines.append(f"    {one_line(row, WIDTH - 4)}")
            shown += 1
    if shown > INCIDENT_LINES:
        lines.append(f"    … and {shown - INCIDENT_LINES} more incident(s): see the reports")
    last = span.days[-1]
    report = Path(shown_lake) / "reports" / last.isoformat() / "report.html"
    notebook_lake = ""
    if shown_lake != README_LAKE:  # the notebooks read ../demo-lake unless told otherwise
        notebook_lake = f"KEYTRAIL_LAKE={Path(shown_lake).resolve()} "
    lines += [
        "",
        "Next (in the virtualenv: . .venv/bin/activate):",
        f"  1. Read the report of {last} in a browser (each scored day has one):",
        f"     {plain(str(report))}",
        "  2. Open its most severe incident in a notebook (after pip install jupyterlab):",
        f"     {plain(notebook_lake)}jupyter lab {NOTEBOOK}",
        "  3. Run keytrail on your own trail (docs/getting-started.md):",
        f"     {OWN_TRAIL}",
    ]
    return lines


def print_lines(out: Console, lines: Sequence[str]) -> None:
    for line in lines:
        out.print(line, highlight=False)


def rendered(lines: Sequence[str]) -> str:
    """The lines as a terminal without colour shows them (what the README quotes)."""
    buffer = io.StringIO()
    print_lines(terminal(file=buffer, width=WIDTH * 2), lines)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# --- the README's copy --------------------------------------------------------------------------


def readme_block(text: str) -> str:
    """The summary the README quotes between its markers (without the code fence)."""
    try:
        body = text.split(README_START, 1)[1].split(README_END, 1)[0]
    except IndexError:
        raise ValueError(f"README has no {README_START} … {README_END} block") from None
    return body.strip("\n").removeprefix("```text\n").removesuffix("```")


def with_block(text: str, summary: str) -> str:
    """``text`` (the README) with ``summary`` between its markers."""
    readme_block(text)  # the markers must be there
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    return f"{head}{README_START}\n```text\n{summary}```\n{README_END}{tail}"


def update_readme(lake: LocalLake, span: Span, readme: Path = README) -> Path:
    """Rewrite the README's copy of the summary from ``lake``, naming the lake ``demo-lake``
    as the default demo does, so the copy is the same on every host."""
    if not readme.is_file():
        raise fail(f"{readme} not found: --update-readme works in a clone of the repository")
    summary = rendered(summary_lines(lake, span, README_LAKE))
    readme.write_text(with_block(readme.read_text(encoding="utf-8"), summary), encoding="utf-8")
    return readme
