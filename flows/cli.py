"""The ``keytrail`` command line. Every command works without a Prefect server.

Exit codes: 0 success; 1 the work ran but found a problem the user asked to fail on (``--strict``
with quarantined input, ``lake check`` findings); 2 bad usage, a source/lake that cannot be used,
or a lake another run holds.
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import pyarrow as pa
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import Source, SourceError, open_source
from analytics.config import Config, ConfigError
from analytics.config import load as load_config
from analytics.ingest.decompress import DEFAULT_MAX_DECOMPRESSED
from analytics.ingest.layout import Selection
from analytics.ingest.pipeline import IngestOptions, IngestSummary, ingest
from analytics.ingest.pipeline import Progress as IngestProgress
from analytics.lake.ddl import Engine
from analytics.redact import redact_log_records
from flows.cli_help import tidy_help
from flows.console import EXIT_STRICT, console, fail, parse_date, plain, terminal
from flows.demo import DEFAULT_DAYS
from flows.lake_access import (
    EndpointUrlOption,
    LakeKmsKeyOption,
    LakeOption,
    LockWaitOption,
    command_lake,
    quarantine_location,
)


def environment_problem(error: BaseException) -> str | None:
    """A one-line explanation when ``error`` comes from the setup rather than the command: an
    S3 endpoint that does not answer, or missing AWS credentials. (A Prefect API that does not
    start is the flow caller's to explain: :func:`flows.runtime.call_flow`.)"""
    if "botocore" in sys.modules:  # only then can an AWS error be behind it
        from analytics.adapters.s3 import aws_problem

        problem = aws_problem(error)
        if problem is not None:
            return str(problem)
    return None


class _ErrorBoundary(TyperGroup):
    """Every command's last line of defence: a setup problem (see :func:`environment_problem`)
    ends the command with ``error: …`` and exit 2 instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise  # typer shows the help
        except UsageError as exc:  # a bad option value, a missing or unknown option
            raise _fail(exc.format_message()) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise  # already said what went wrong
        except Exception as exc:
            message = environment_problem(exc)
            if message is None:
                raise
            raise _fail(message) from None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy_help(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        tidy_help(self, ctx)
        super().format_help(ctx, formatter)


app = typer.Typer(
    cls=_ErrorBoundary,
    name="keytrail",
    help="Who used which AWS KMS key, is that normal, and what changed about our keys.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
_date = parse_date
_fail = fail


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"keytrail {importlib.metadata.version('keytrail')}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """keytrail watches AWS KMS key usage in CloudTrail: ingest, detect, report, export."""
    redact_log_records()


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
    endpoint_url: EndpointUrlOption = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Read threads (default: the core count).")
    ] = os.cpu_count() or 1,
    max_object_mb: Annotated[
        int,
        typer.Option(
            min=1, help="Refuse objects larger than this, as stored or decompressed (MiB)."
        ),
    ] = DEFAULT_MAX_DECOMPRESSED // (1024 * 1024),
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 if any object or record was quarantined (eventID clashes included).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    lake_kms_key: LakeKmsKeyOption = None,
    wait: LockWaitOption = 0.0,
    checkpoint_events: Annotated[
        int, typer.Option(min=1, hidden=True, help="Events written between commits.")
    ] = IngestOptions.checkpoint_events,
    chunk_kb: Annotated[
        int, typer.Option(min=1, hidden=True, help="Compressed KiB read per worker task.")
    ] = IngestOptions.chunk_bytes // 1024,
) -> None:
    """Read CloudTrail log files into the lake, exactly once.

    Digest and Insight files are skipped; bad objects and records are quarantined with a reason
    under LAKE/quarantine/ while everything good beside them is kept.

    Example:

        [bold]keytrail ingest s3://trail/prefix --lake ./lake \\
            --start 2026-11-01 --end 2026-11-28[/]
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
        chunk_bytes=min(IngestOptions.chunk_bytes, chunk_kb * 1024),
        piece_bytes=chunk_kb * 1024,
    )
    try:
        trail = open_source(source, endpoint_url=endpoint_url)
        with command_lake(lake, f"keytrail ingest {source}", endpoint_url=endpoint_url,
                          kms_key_id=lake_kms_key, wait_seconds=wait,
                          creates=True) as local:  # fmt: skip
            summary = _run_ingest(trail, local, options, show_progress=not as_json)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_ingest_summary(summary, lake)
    if strict and (
        summary.objects_quarantined or summary.records_quarantined or summary.event_id_clashes
    ):
        raise typer.Exit(EXIT_STRICT)


def _run_ingest(
    source: Source, lake: LocalLake, options: IngestOptions, show_progress: bool
) -> IngestSummary:
    # The read threads and the merge share this process: Arrow's own allocator (mimalloc) would
    # hold freed memory beside glibc's and Polars', about 100 MB more at peak on 1M events.
    pa.set_memory_pool(pa.system_memory_pool())
    # What is loaded so far (Polars, pyarrow, keytrail's modules) lives as long as the run: set
    # apart from the cyclic collector, whose full passes would otherwise walk it all (2–3% of an
    # ingest's CPU); handed back to it afterwards.
    gc.freeze()
    try:
        return _ingest_with_progress(source, lake, options, show_progress)
    finally:
        gc.unfreeze()


def _ingest_with_progress(
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
                total=progress.objects_total or None,  # S3 folders: listed as read
                completed=progress.objects_done,
                events=progress.events_done,
                rate=progress.events_done / elapsed,
            )

        return ingest(source, lake, options, progress=update)


def _print_ingest_summary(summary: IngestSummary, lake: str) -> None:
    out = terminal()
    title = plain(f"ingest {summary.source} → {lake}")
    table = Table(title=title, show_header=False, box=None)
    rows = [
        ("log objects listed", summary.objects_seen),
        ("  ingested", summary.objects_ingested),
        ("    read by the compiled scanner", summary.objects_scanned),
        ("  already in the lake (skipped)", summary.objects_skipped),
        ("  quarantined", summary.objects_quarantined),
        ("  failed to fetch (retried next run)", summary.objects_failed),
        ("records quarantined", summary.records_quarantined),
        ("digest / insight / other files skipped",
         f"{summary.digests_skipped} / {summary.insights_skipped} / {summary.other_files_skipped}"),
        ("events written", summary.events_written),
        ("duplicate events dropped", summary.duplicate_events_dropped),
        ("eventID clashes quarantined", summary.event_id_clashes),
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
    for line in summary.clashes[:20]:
        out.print(f"[yellow]quarantined[/] {plain(line)}", highlight=False, soft_wrap=True)
    listed = (summary.quarantined, summary.failed, summary.clashes)
    hidden = sum(max(len(lines) - 20, 0) for lines in listed)
    if hidden > 0:
        out.print(f"… and {hidden} more; see {plain(quarantine_location(lake))} and --json")


lake_app = typer.Typer(
    name="lake",
    cls=_ErrorBoundary,
    help="Look after the lake itself: integrity checks, tables for query engines.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(lake_app, name="lake")


@lake_app.command("check")
def lake_check_command(
    lake: LakeOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON result object.")] = False,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Check the lake's integrity, read-only (no lock taken; safe beside a running ingest).

    Every event file readable and in the event schema, partition folders named by date and
    holding their own day, no event ID twice, _state/ consistent with the event files;
    quarantine records listed with counts. Exit 0 when clean, 1 with findings, 2 when the lake
    cannot be used.

    Example:

        [bold]keytrail lake check --lake ./lake --json[/]
    """
    from analytics.lake.check import MAX_FINDINGS_PER_KIND, check_lake, is_lake

    with command_lake(lake, "keytrail lake check", endpoint_url=endpoint_url,
                      writes=False) as local:  # fmt: skip
        if not is_lake(local):
            raise _fail(f"{lake} is not a keytrail lake (it has neither events/ nor _state/)")
        report = check_lake(local)
    if as_json:
        typer.echo(json.dumps({"lake": lake, **report.to_dict()}, indent=2))
    else:
        out = terminal()
        verdict = "[green]clean[/]" if report.clean else "[red]findings[/]"
        out.print(
            f"lake {plain(lake)}: {verdict} — {report.days:,} day(s), {report.event_files:,} "
            f"event file(s), {report.events:,} events, {report.state_objects:,} source "
            f"object(s) in _state; quarantined: {len(report.quarantined_objects):,} object(s), "
            f"{report.quarantined_records:,} record(s)",
            highlight=False,
        )
        for finding in report.findings:
            out.print(f"[red]✗[/] {plain(finding.describe())}", highlight=False, soft_wrap=True)
        for kind, count in sorted(report.finding_counts.items()):
            if count > MAX_FINDINGS_PER_KIND:
                out.print(f"… {count - MAX_FINDINGS_PER_KIND:,} more {kind}; see --json counts")
    if not report.clean:
        raise typer.Exit(EXIT_STRICT)


@lake_app.command("ddl")
def lake_ddl_command(
    engine: Annotated[
        Engine, typer.Option(case_sensitive=False, help="Engine whose SQL to print.")
    ],
    lake: Annotated[
        str, typer.Option(help="The lake in S3: s3://bucket/prefix.", metavar="S3_URI")
    ] = "s3://my-bucket/keytrail",
    database: Annotated[
        str, typer.Option(help="Database (Trino: schema) to create the tables in.")
    ] = "keytrail",
    since: Annotated[
        str, typer.Option(help="Athena: first day partition projection covers.", metavar="DATE")
    ] = "2020-01-01",
) -> None:
    """Print the SQL that makes an S3 lake queryable from Athena, Trino or Spark.

    Tables events, hourly_features, alerts and incidents, partitioned by event_date (the
    folder name), with column types taken from the lake's schemas. Athena finds days by
    partition projection; Trino and Spark by the statement printed after each table (run it
    again after each nightly ingest). Reads nothing and needs no credentials.

    Example:

        [bold]keytrail lake ddl --engine athena --lake s3://sec-lake/keytrail > lake.sql[/]
    """
    from analytics.lake.ddl import DdlError, script

    first = _date(since, "--since")
    assert first is not None
    try:
        text = script(engine, lake, database, first)
    except DdlError as exc:
        raise _fail(str(exc)) from None
    typer.echo(text, nl=False)


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

    The labelled attacks and decoys need ordinary days before them: when --days is too short for
    them the tree has none, and generate says so on stderr and in labels.json
    ("scenarios_planted": false, and why).

    Example:

        [bold]keytrail generate ./trail --days 35 --events-per-day 5000 --seed 7[/]
    """
    from analytics.generator import generate_tree

    first = _date(start, "--start")
    assert first is not None
    if out.exists() and not out.is_dir():
        raise _fail(f"{out} is not a folder (a file of that name exists)")
    summary = generate_tree(
        out, days=days, events_per_day=events_per_day, seed=seed, start=first,
        org_id=org, corrupt=corrupt, workers=workers,
    )  # fmt: skip
    terminal().print(
        f"wrote {summary.events_written:,} events in {summary.files_written:,} log files "
        f"(+{summary.digest_files:,} digests, {summary.bytes_written / 1e6:,.1f} MB) to "
        f"{plain(str(out))} in {summary.seconds:.1f} s; labels: {plain(str(summary.labels_path))}",
        highlight=False,
    )
    if summary.scenarios_missing:
        console.print(f"[yellow]warning:[/] {plain(summary.scenarios_missing)}", highlight=False)


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
    wait: LockWaitOption = 0.0,
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Score one day: rule detectors and the isolation forest, against baselines of the days before.

    Writes LAKE/alerts/event_date=D/alerts.parquet and the day's incidents (related alerts,
    triaged together) to LAKE/incidents/event_date=D/incidents.parquet, replacing that day's
    files atomically. Prints the incidents first, then the alerts, each marked with its incident.

    A detector whose lake holds fewer days of history than it needs gets a "warming up" line
    with the ingest command that backfills them ("warming_up" in --json).

    Example:

        [bold]keytrail detect --lake ./lake --date 2026-11-28[/]
    """
    from analytics.detect.scoring import run

    day = _date(date, "--date")
    assert day is not None
    settings = _load_config(config)
    with command_lake(lake, f"keytrail detect {day}", endpoint_url=endpoint_url,
                      kms_key_id=lake_kms_key, writes=not dry_run,
                      wait_seconds=wait) as local:  # fmt: skip
        if not local.event_files(day):
            raise _fail(f"no events for {day} in {lake}; run keytrail ingest first")
        result = run(local, day, settings, dry_run=dry_run, lake_name=lake)
    summary = result.summary
    for expired in summary["expired_suppressions"]:
        console.print(
            f"[yellow]warning:[/] suppression {plain(expired)} has expired and no longer applies"
        )
    if as_json:
        from analytics.api import incident_records

        # The incidents themselves beside the summary; their count stays as incident_count.
        shown = {**summary, "incident_count": result.incidents.height,
                 "incidents": incident_records(result.incidents)}  # fmt: skip
        typer.echo(json.dumps(shown, indent=2))
        return
    _print_alerts(result.alerts, summary, result.incidents)


def _print_alerts(alerts: pl.DataFrame, summary: dict[str, object],
                  incidents: pl.DataFrame) -> None:  # fmt: skip
    from flows.cli_incidents import labels, print_incidents

    out = terminal()
    verb = "would raise" if summary["dry_run"] else "raised"
    out.print(
        f"[bold]{summary['date']}[/]: {verb} {summary['alerts']} alert(s) in "
        f"{incidents.height} incident(s), {summary['to_triage']} to triage; "
        f"{summary['suppressed']} suppressed; {summary['events_scored']:,} events, "
        f"{summary['rows_scored']:,} hourly rows scored in {summary['seconds']} s",
        highlight=False,
    )
    print_incidents(out, incidents, verb)
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
    label = labels(incidents)
    if active.height:
        out.print("[dim]alerts (I1 …: part of that incident; -: stands alone)[/]", highlight=False)
    for row in active.head(30).iter_rows(named=True):
        severity = row["severity"].upper()
        # Which incident the alert is part of (I1, …), or "-" for one to triage by itself.
        part = label.get(row.get("incident_id") or "", "-")
        out.print(
            f"{part:4} [bold]{severity:8}[/] {plain(row['detector'])}{_entity(row)}: "
            f"{plain(row['reason'])}",
            highlight=False,
            soft_wrap=True,
        )


def _entity(alert: dict[str, Any]) -> str:
    """`` (key/1234abcd by role/x@account)`` for a model alert, whose reason speaks of "this
    key" and "this actor" without naming them (a rule's reason names what it is about)."""
    from analytics.detect.incidents import short_arn
    from analytics.detect.model import DETECTOR_ID

    if alert["detector"] != DETECTOR_ID:
        return ""
    return f" ({plain(short_arn(alert['key_arn']))} by {plain(short_arn(alert['actor']))})"


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
    endpoint_url: EndpointUrlOption = None,
) -> None:
    """Precision and recall per labelled scenario of a generated tree, and what it took to triage.

    Per scenario, "to triage" counts the incidents pointing at it plus the alerts outside any
    incident pointing at it; the last line counts high/critical incidents or lone alerts that no
    attack explains, over the scored days.

    Labels without attack scenarios (a tree generated too short for them) have nothing to
    score: error, exit 2.

    Example:

        [bold]keytrail evaluate --lake ./lake --labels ./trail/labels.json[/]
    """
    from analytics.detect.evaluate import NOTHING_TO_SCORE, evaluate, has_scenarios, load_labels

    try:
        scenarios = load_labels(labels)
    except OSError as exc:
        raise _fail(f"labels {labels}: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, not UTF-8
        raise _fail(f"labels {labels}: not a labels.json ({exc})") from None
    if not has_scenarios(scenarios):
        why = scenarios.get("scenarios_missing")
        raise _fail(f"labels {labels}: {NOTHING_TO_SCORE}" + (f" ({why})" if why else ""))
    with command_lake(lake, "keytrail evaluate", endpoint_url=endpoint_url,
                      writes=False) as local:  # fmt: skip
        report = evaluate(local, scenarios)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    out = terminal()
    table = Table("scenario", "malicious", "found", "alerts", "high+", "incidents", "to triage",
                  box=None)  # fmt: skip
    for row in report["scenarios"]:
        table.add_row(plain(row["id"]), str(row["malicious"]), str(row["found"]),
                      str(row["alerts"]), str(row["high_alerts"]), str(row["incidents"]),
                      str(row["to_triage"]))  # fmt: skip
    out.print(table)
    out.print(
        f"recall {report['recall']:.0%} · precision on scenario days {report['precision']:.0%} · "
        f"decoys with high/critical alerts: {plain(str(report['decoys_with_high_alerts']))}",
        highlight=False,
    )
    days = report["scored_days"]
    out.print(
        f"over {len(days)} scored day(s): {report['incidents']} incident(s); high/critical "
        f"incidents or lone alerts outside any attack: {report['high_outside_attacks']} · "
        f"decoys in high/critical incidents: {plain(str(report['decoys_in_high_incidents']))}",
        highlight=False,
    )


SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples" / "trail"


@app.command("demo")
def demo_command(
    lake: Annotated[
        Path, typer.Option(help="Fresh lake to create (replaced if it exists).")
    ] = Path("demo-lake"),
    samples: Annotated[
        Path, typer.Option(help="Trail tree to read.", show_default="data/samples/trail")
    ] = SAMPLES,
    days: Annotated[
        int,
        typer.Option(
            min=1,
            help="Score the last N days with events (each before the last needs 7 of history).",
        ),
    ] = DEFAULT_DAYS,
    update_readme: Annotated[
        bool,
        typer.Option("--update-readme", help="Also rewrite README.md's copy of the summary."),
    ] = False,
) -> None:
    """Run keytrail over the embedded sample trail into a fresh lake, and say what it found.

    The nightly flow ingests the whole trail and scores its last day, then the backfill flow
    scores the days before it, each with its report and OCSF file. Uses Prefect's temporary
    local API: no AWS credentials and no server are needed. Ends with a summary: alerts,
    incidents and what to triage per day, one line per incident, and what to try next.
    Example:

        [bold]keytrail demo --days 4[/]
    """
    from flows.demo import README, run_demo

    run_demo(lake, samples, days, readme=README if update_readme else None)
