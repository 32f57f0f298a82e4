"""The ``keytrail`` command line. Every command works without a Prefect server.

Exit codes: 0 success; 1 the work ran but found a problem the user asked to fail on (``--strict``
with quarantined input); 2 bad usage or a source/lake that cannot be used.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
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
from analytics.config import Config, ConfigError
from analytics.config import load as load_config
from analytics.decompress import DEFAULT_MAX_DECOMPRESSED
from analytics.ingest import IngestOptions, IngestSummary, ingest
from analytics.ingest import Progress as IngestProgress
from analytics.layout import Selection
from flows.console import EXIT_STRICT, console, fail, parse_date, plain
from flows.lake_access import LakeKmsKeyOption, LakeOption, command_lake, quarantine_location

app = typer.Typer(
    name="keytrail",
    help="Who used which AWS KMS key, is that normal, and what changed about our keys.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
_date = parse_date
_fail = fail


@app.callback()
def root() -> None:
    """keytrail watches AWS KMS key usage in CloudTrail: ingest, detect, report, export."""


@app.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Trail folder, or s3://bucket/prefix.")],
    lake: LakeOption,
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
    lake_kms_key: LakeKmsKeyOption = None,
    checkpoint_events: Annotated[
        int, typer.Option(min=1, hidden=True, help="Events written between commits.")
    ] = IngestOptions.checkpoint_events,
    chunk_kb: Annotated[
        int, typer.Option(min=1, hidden=True, help="Compressed KiB decoded per worker task.")
    ] = IngestOptions.chunk_bytes // 1024,
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
        flush_events=min(IngestOptions.flush_events, checkpoint_events),
        checkpoint_events=checkpoint_events,
        chunk_bytes=chunk_kb * 1024,
    )
    try:
        trail = open_source(source, endpoint_url=endpoint_url)
        with command_lake(lake, f"keytrail ingest {source}", endpoint_url=endpoint_url,
                          kms_key_id=lake_kms_key) as local:  # fmt: skip
            summary = _run_ingest(trail, local, options, show_progress=not as_json)
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


def _print_ingest_summary(summary: IngestSummary, lake: str) -> None:
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
        out.print(f"… and {hidden} more; see {plain(quarantine_location(lake))} and --json")


def _register_extensions() -> None:
    from flows.cli_orchestrate import register as register_orchestrate
    from flows.cli_publish import register as register_publish

    register_publish(app)
    register_orchestrate(app)


_register_extensions()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Argument(help="Folder to write the trail tree into.")],
    days: Annotated[int, typer.Option(min=1, help="Days of traffic.")] = 14,
    events_per_day: Annotated[int, typer.Option(min=10, help="Average events per day.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 7,
    org: Annotated[
        str | None, typer.Option(help="Write an organization trail layout under this org ID.")
    ] = None,
    start: Annotated[str, typer.Option(help="First day (UTC), YYYY-MM-DD.")] = "2026-11-01",
    corrupt: Annotated[
        bool, typer.Option("--corrupt", help="Also write bad objects and records (for tests).")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = os.cpu_count() or 1,
) -> None:
    """Write a realistic synthetic trail (native S3 layout, with digests) and labels.json.

    Example:

        [bold]keytrail generate ./trail --days 35 --events-per-day 5000 --seed 7[/]
    """
    from analytics.generator import generate_tree

    first = _date(start, "--start")
    assert first is not None
    summary = generate_tree(
        out, days=days, events_per_day=events_per_day, seed=seed, start=first,
        org_id=org, corrupt=corrupt, workers=workers,
    )  # fmt: skip
    Console().print(
        f"wrote {summary.events_written:,} events in {summary.files_written:,} log files "
        f"(+{summary.digest_files:,} digests, {summary.bytes_written / 1e6:,.1f} MB) to "
        f"{plain(str(out))} in {summary.seconds:.1f} s; labels: {plain(str(summary.labels_path))}",
        highlight=False,
    )


def _load_config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


@app.command("detect")
def detect_command(
    lake: LakeOption,
    date: Annotated[str, typer.Option(help="Day to score (UTC), YYYY-MM-DD.")],
    config: Annotated[Path | None, typer.Option(help="keytrail.toml with thresholds.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would fire; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    lake_kms_key: LakeKmsKeyOption = None,
) -> None:
    """Score one day: rule detectors and the isolation forest, against baselines of the days before.

    Writes LAKE/alerts/event_date=D/alerts.parquet (replacing that day's file atomically).

    A detector whose lake holds fewer days of history than it needs gets a "warming up" line
    with the ingest command that backfills them ("warming_up" in --json).

    Example:

        [bold]keytrail detect --lake ./lake --date 2026-11-28[/]
    """
    from analytics.detect import run

    day = _date(date, "--date")
    assert day is not None
    settings = _load_config(config)
    with command_lake(lake, f"keytrail detect {day}", kms_key_id=lake_kms_key,
                      writes=not dry_run) as local:  # fmt: skip
        if not local.partition_files(day):
            raise _fail(f"no events for {day} in {lake}; run keytrail ingest first")
        result = run(local, day, settings, dry_run=dry_run, lake_name=lake)
    summary = result.summary
    for expired in summary["expired_suppressions"]:
        console.print(
            f"[yellow]warning:[/] suppression {plain(expired)} has expired and no longer applies"
        )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_alerts(result.alerts, summary)


def _print_alerts(alerts: pl.DataFrame, summary: dict[str, object]) -> None:
    out = Console()
    verb = "would raise" if summary["dry_run"] else "raised"
    out.print(
        f"[bold]{summary['date']}[/]: {verb} {summary['alerts']} alert(s), "
        f"{summary['suppressed']} suppressed; {summary['events_scored']:,} events, "
        f"{summary['rows_scored']:,} hourly rows scored in {summary['seconds']} s",
        highlight=False,
    )
    if summary.get("model_note"):
        out.print(f"[dim]{plain(str(summary['model_note']))}[/]", highlight=False)
    warming = summary.get("warming_up") or []
    assert isinstance(warming, list)
    for entry in warming:
        out.print(
            f"[yellow]warming up:[/] {plain(entry['id'])} has {entry['history_days']} of "
            f"{entry['needed_days']} day(s) of history; backfill: {plain(entry['backfill'])}",
            highlight=False,
            soft_wrap=True,
        )
    by_detector = summary["alerts_by_detector"]
    assert isinstance(by_detector, dict)
    if by_detector:
        table = Table("detector", "alerts", box=None)
        for name, count in by_detector.items():
            table.add_row(plain(name), str(count))
        out.print(table)
    active = alerts.filter(pl.col("suppressed_by").is_null())
    for row in active.head(30).iter_rows(named=True):
        severity = row["severity"].upper()
        out.print(
            f"[bold]{severity:8}[/] {plain(row['detector'])}: {plain(row['reason'])}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("evaluate")
def evaluate_command(
    lake: Annotated[
        str,
        typer.Option(
            help="Lake with alerts for the labelled days: a folder or s3://bucket/prefix."
        ),
    ],
    labels: Annotated[Path, typer.Option(help="labels.json written by keytrail generate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Precision and recall per labelled scenario of a generated tree.

    Example:

        [bold]keytrail evaluate --lake ./lake --labels ./trail/labels.json[/]
    """
    from analytics.evaluate import evaluate, load_labels

    with command_lake(lake, "keytrail evaluate", writes=False) as local:
        report = evaluate(local, load_labels(labels))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    out = Console()
    table = Table("scenario", "malicious", "found", "alerts", "high+", box=None)
    for row in report["scenarios"]:
        table.add_row(plain(row["id"]), str(row["malicious"]), str(row["found"]),
                      str(row["alerts"]), str(row["high_alerts"]))  # fmt: skip
    out.print(table)
    out.print(
        f"recall {report['recall']:.0%} · precision on scenario days {report['precision']:.0%} · "
        f"decoys with high/critical alerts: {report['decoys_with_high_alerts']}"
    )


SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples" / "trail"


@app.command("demo")
def demo_command(
    lake: Annotated[
        Path, typer.Option(help="Fresh lake to create (replaced if it exists).")
    ] = Path("demo-lake"),
    samples: Annotated[Path, typer.Option(help="Trail tree to read.")] = SAMPLES,
) -> None:
    """Run the nightly flow over the embedded sample trail into a fresh lake.

    Uses Prefect's temporary local API: no AWS credentials and no server are needed. Prints
    the path of the last day's report.html and the alert count. Example:

        [bold]keytrail demo[/]
    """
    from flows.cli_orchestrate import run_demo

    run_demo(lake, samples)
