"""The ``keytrail`` command line. Every command works without a Prefect server.

Exit codes: 0 success; 1 the work ran but found a problem the user asked to fail on (``--strict``
with quarantined input); 2 bad usage or a source/lake that cannot be used.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import Source, SourceError, open_source
from analytics.decompress import DEFAULT_MAX_DECOMPRESSED
from analytics.ingest import IngestOptions, IngestSummary, ingest
from analytics.ingest import Progress as IngestProgress
from analytics.layout import Selection

app = typer.Typer(
    name="keytrail",
    help="Who used which AWS KMS key, is that normal, and what changed about our keys.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console(stderr=True)
EXIT_STRICT = 1
EXIT_USAGE = 2


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def plain(text: str) -> str:
    """Untrusted text (object keys, reasons) made safe for a terminal: no markup, no controls."""
    printable = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return escape(printable)


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {plain(message)}", highlight=False)
    return typer.Exit(EXIT_USAGE)


@app.callback()
def root() -> None:
    """keytrail watches AWS KMS key usage in CloudTrail: ingest, detect, report, export."""


@app.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Trail folder, or s3://bucket[/prefix].")],
    lake: Annotated[Path, typer.Option(help="Lake folder to write.")],
    start: Annotated[
        str | None, typer.Option(help="First event date (UTC, inclusive), YYYY-MM-DD.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last event date (UTC, inclusive); D+1's folder is read too.")
    ] = None,
    account: Annotated[
        list[str] | None, typer.Option(help="Only this account's log files (repeatable).")
    ] = None,
    region: Annotated[list[str] | None, typer.Option(help="Only this region (repeatable).")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint, e.g. http://127.0.0.1:5000.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Decoding processes (default: the core count).")
    ] = os.cpu_count() or 1,
    max_object_mb: Annotated[
        int, typer.Option(min=1, help="Refuse objects larger than this once decompressed (MiB).")
    ] = DEFAULT_MAX_DECOMPRESSED // (1024 * 1024),
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if any object or record was quarantined.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    flush_events: Annotated[
        int, typer.Option(min=1, hidden=True, help="Events buffered between commits.")
    ] = IngestOptions.flush_events,
) -> None:
    """Read CloudTrail log files into the lake, exactly once.

    Digest and Insight files are skipped; bad objects and records are quarantined with a reason
    under LAKE/quarantine/ while everything good beside them is kept.

    Example:

        [bold]keytrail ingest s3://trail/prefix --lake ./lake --start 2026-11-01 --end 2026-11-28[/]
    """
    start_date, end_date = _date(start, "--start"), _date(end, "--end")
    if start_date and end_date and start_date > end_date:
        raise _fail("--start is after --end")
    selection = Selection(start_date, end_date, frozenset(account or []), frozenset(region or []))
    options = IngestOptions(
        selection=selection,
        workers=workers,
        max_object_bytes=max_object_mb * 1024 * 1024,
        flush_events=flush_events,
    )
    try:
        trail = open_source(source, endpoint_url=endpoint_url)
        summary = _run_ingest(trail, LocalLake(lake), options, show_progress=not as_json)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_ingest_summary(summary, lake)
    if strict and (summary.objects_quarantined or summary.records_quarantined):
        raise typer.Exit(EXIT_STRICT)


def _run_ingest(
    source: Source, lake: LocalLake, options: IngestOptions, show_progress: bool
) -> IngestSummary:
    if not (show_progress and console.is_terminal):
        return ingest(source, lake, options)
    columns = (
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("objects · {task.fields[events]:,} events · {task.fields[rate]:,.0f} ev/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("ingest", total=None, events=0, rate=0.0)

        def update(progress: IngestProgress) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(
                task,
                total=progress.objects_total,
                completed=progress.objects_done,
                events=progress.events_done,
                rate=progress.events_done / elapsed,
            )

        return ingest(source, lake, options, progress=update)


def _print_ingest_summary(summary: IngestSummary, lake: Path) -> None:
    out = Console()
    title = plain(f"ingest {summary.source} → {lake}")
    table = Table(title=title, show_header=False, box=None)
    rows = [
        ("log objects listed", summary.objects_seen),
        ("  ingested", summary.objects_ingested),
        ("  already in the lake (skipped)", summary.objects_skipped),
        ("  quarantined", summary.objects_quarantined),
        ("  failed to fetch (retried next run)", summary.objects_failed),
        ("records quarantined", summary.records_quarantined),
        ("digest / insight / other files skipped",
         f"{summary.digests_skipped} / {summary.insights_skipped} / {summary.other_files_skipped}"),
        ("events written", summary.events_written),
        ("duplicate events dropped", summary.duplicate_events_dropped),
        ("events outside --start/--end", summary.events_outside_range),
        ("seconds", summary.seconds),
    ]  # fmt: skip
    for label, value in rows:
        table.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)
    if summary.dates_written:
        out.print(f"dates written: {summary.dates_written[0]} … {summary.dates_written[-1]}")
    for line in summary.quarantined[:20]:
        out.print(f"[yellow]quarantined[/] {plain(line)}", highlight=False, soft_wrap=True)
    for line in summary.failed[:20]:
        out.print(f"[red]failed[/] {plain(line)}", highlight=False, soft_wrap=True)
    hidden = len(summary.quarantined) + len(summary.failed) - 40
    if hidden > 0:
        out.print(f"… and {hidden} more; see {lake / 'quarantine'} and --json")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
