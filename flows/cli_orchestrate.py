"""``keytrail run`` and ``keytrail serve``: the Prefect flows on the command line.

Registered on the main app by :func:`register`. Prefect is imported inside the commands, never
at module import, so ``keytrail ingest`` and friends start as fast as before. The main CLI's
helpers (``plain``, ``_fail``) are imported inside functions too, because ``flows.cli`` imports
this module while it is itself being imported.

``run`` needs no server: without ``PREFECT_API_URL`` Prefect starts a temporary local API for the
run (8-14 s; given longer, and a second try, on a busy host: :func:`flows.runtime.call_flow`).
``serve`` needs one, because only a server schedules.

Exit codes of ``run``: 0 the run completed; 1 a stage failed (the message names it and why);
2 bad usage, the lake is locked by another run, S3 cannot be reached or signed for, or the
temporary Prefect API would not start.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from analytics.adapters.lock import DEFAULT_TTL, LakeLocked, check_unlocked
from flows.cli_incidents import one_line
from flows.console import fail as _fail
from flows.console import parse_date as _day
from flows.console import plain as _plain
from flows.console import terminal
from flows.lake_access import (
    EndpointUrlOption,
    LakeKmsKeyOption,
    LakeOption,
    LockWaitOption,
    is_remote,
    local_lake_problem,
    remove_empty_lake,
)

EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
_TTL_HOURS = DEFAULT_TTL.total_seconds() / 3600


class TaskRunnerName(enum.StrEnum):
    THREAD = "thread"
    DASK = "dask"


def _quiet_prefect_defaults() -> None:
    """Defaults for a Prefect started by this process (set before Prefect is imported).

    Analytics off: with no DNS the telemetry calls fail noisily and slow the temporary server's
    start (reference/measurements-2026-11.md §6). ``setdefault``: the user's choice wins.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _check_settings(config: Path | None, sinks: list[str]) -> None:
    """Refuse bad configuration before a Prefect server is started for nothing."""
    from analytics.config import ConfigError
    from analytics.config import load as load_config
    from flows.tasks import SinkSpec

    try:
        load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for text in sinks:
        try:
            SinkSpec.parse(text)
        except ValueError as exc:
            raise _fail(f"--sink {text}: {exc}") from None


def _check_lake(lake: str | Path, ttl_hours: float, check_lock: bool = True) -> None:
    """Refuse at once a local lake that is a file or (unless the run is to wait for it) that a
    live run holds; an S3 lake is checked when locked."""
    problem = local_lake_problem(lake, creates=True)
    if problem is not None:
        raise _fail(problem)
    if is_remote(lake) or not check_lock:
        return
    lake = Path(lake)
    try:
        check_unlocked(lake, dt.timedelta(hours=ttl_hours))
    except LakeLocked as exc:
        raise _fail(str(exc)) from None


SINK_HELP = (
    "Where alerts go (repeatable): ocsf-file or ocsf-file=PATH, s3=s3://bucket/prefix, "
    "splunk-hec or splunk-hec=URL (e.g. https://splunk:8088; else [hec] url; token: "
    "$KEYTRAIL_HEC_TOKEN or --hec-token-block), securityhub or securityhub=REGION. "
    "Default: ocsf-file."
)

# Options shared by `run` and `serve`, declared once so their help texts cannot drift.
SourceOption = Annotated[str, typer.Option(help="Trail folder, or s3://bucket/prefix.")]
ConfigOption = Annotated[Path | None, typer.Option(help="keytrail.toml with thresholds.")]
SinkOption = Annotated[list[str] | None, typer.Option(help=SINK_HELP)]
TaskRunnerOption = Annotated[
    TaskRunnerName, typer.Option(help="Where partitions are read: thread or dask.")
]
DaskAddressOption = Annotated[
    str | None, typer.Option(help="dask: scheduler address, e.g. tcp://10.0.0.5:8786.")
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", help="dask: show the cluster's INFO log lines too.")
]
DaskWorkersOption = Annotated[
    int | None, typer.Option(min=1, help="dask: local cluster size (default: cores).")
]
InventoryRegionOption = Annotated[
    list[str] | None,
    typer.Option(help="Also describe the KMS keys of this region in the report (repeatable)."),
]
HecTokenBlockOption = Annotated[
    str | None, typer.Option(help="splunk-hec: Prefect Secret block holding the token.")
]


def run_command(
    source: SourceOption,
    lake: LakeOption,
    date: Annotated[
        str | None, typer.Option(help="Day to run the nightly flow for (default: yesterday, UTC).")
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Backfill: first day (UTC, inclusive); needs --end.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Backfill: last day (UTC, inclusive).")] = None,
    config: ConfigOption = None,
    sink: SinkOption = None,
    endpoint_url: EndpointUrlOption = None,
    ingest_from: Annotated[
        str | None,
        typer.Option(help="Nightly: also ingest from this day (a first run filling its window)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute days that already completed.")
    ] = False,
    task_runner: TaskRunnerOption = TaskRunnerName.THREAD,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    verbose: VerboseOption = False,
    inventory_region: InventoryRegionOption = None,
    hec_token_block: HecTokenBlockOption = None,
    lock_ttl_hours: Annotated[
        float, typer.Option(min=0.01, help="A lock whose heartbeat is older is stale.")
    ] = _TTL_HOURS,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON result object.")] = False,
    lake_kms_key: LakeKmsKeyOption = None,
    wait: LockWaitOption = 0.0,
) -> None:
    """Run the nightly flow for a day, or the backfill flow over --start..--end, under Prefect.

    Ingest (fanned out per account, region and delivery day) → features → baselines → detect →
    publish → export. Days that already completed with the same inputs are skipped unless
    --force. Needs no Prefect server (a temporary local API is started when PREFECT_API_URL is
    unset).

    Examples:

        [bold]keytrail run --source s3://trail/prefix --lake ./lake[/]

        [bold]keytrail run --source ./trail --lake ./lake \\
            --start 2026-11-01 --end 2026-11-28[/]

        [bold]keytrail run --source ./trail --lake ./lake \\
            --date 2026-11-28 --task-runner dask[/]
    """
    day = _day(date, "--date")
    first, last = _day(start, "--start"), _day(end, "--end")
    since = _day(ingest_from, "--ingest-from")
    if day and (first or last):
        raise _fail("give either --date or --start/--end, not both")
    if (first is None) != (last is None):
        raise _fail("--start and --end go together")
    if first and last and first > last:
        raise _fail("--start is after --end")
    if since and first:
        raise _fail("--ingest-from is for a nightly run; a backfill ingests its whole range")
    if dask_address and task_runner is not TaskRunnerName.DASK:
        raise _fail("--dask-address needs --task-runner dask")
    sinks = list(sink or [])
    _check_settings(config, sinks)
    _check_lake(lake, lock_ttl_hours, check_lock=wait <= 0)
    if not is_remote(source) and not Path(source).is_dir():
        raise _fail(f"source folder {source} does not exist or is not a folder")
    _quiet_prefect_defaults()
    from flows.runtime import make_task_runner

    runner = make_task_runner(task_runner.value, dask_address, dask_workers, verbose)
    common: dict[str, Any] = {
        "source": source,
        "lake": lake,
        "config": str(config) if config else None,
        "sinks": sinks or None,
        "endpoint_url": endpoint_url,
        "force": force,
        "inventory_regions": list(inventory_region or []) or None,
        "hec_token_block": hec_token_block,
        "lock_ttl_hours": lock_ttl_hours,
        "lock_wait_seconds": wait,
        "lake_kms_key": lake_kms_key,
    }
    new_lake = None if is_remote(lake) or Path(lake).exists() else Path(lake)
    try:
        if first and last:
            from flows.backfill import backfill

            result = _call(backfill.with_options(task_runner=runner), start=first, end=last,
                           **common)  # fmt: skip
        else:
            from flows.nightly import nightly

            result = _call(nightly.with_options(task_runner=runner), date=day,
                           ingest_from=since, **common)  # fmt: skip
    finally:
        if new_lake is not None:  # a run that failed before writing leaves no empty lake
            remove_empty_lake(new_lake)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        print_result(result)


def _call(flow: Any, **parameters: Any) -> dict[str, Any]:
    """Run a flow; turn its failure into the CLI's message and exit code."""
    from flows.cli import environment_problem
    from flows.nightly import StageFailed
    from flows.runtime import PrefectUnavailable, call_flow

    try:
        result: dict[str, Any] = call_flow(flow, **parameters)
    except (LakeLocked, PrefectUnavailable) as exc:
        raise _fail(str(exc)) from None
    except StageFailed as exc:
        from flows.console import console

        setup = environment_problem(exc)  # an unreachable S3 or no credentials: exit 2
        if setup is not None:
            raise _fail(f"{exc.stage} failed: {setup}") from None

        console.print(f"[bold red]error:[/] {_plain(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_STAGE_FAILED) from None
    return result


def print_result(result: dict[str, Any]) -> None:
    """One line per day: alerts and incidents, the top incidents one line each, report path and
    exports; plus what ingest did."""
    out = terminal()
    ingest = result.get("ingest")
    if ingest:
        out.print(
            f"ingest {_plain(str(ingest['source']))}: {ingest['objects_seen']:,} log objects, "
            f"{ingest['objects_ingested']:,} read, {ingest['objects_skipped']:,} already in the "
            f"lake, {ingest['objects_quarantined']:,} quarantined; "
            f"{ingest['events_written']:,} events written",
            highlight=False,
        )
        for line in ingest.get("quarantined", [])[:20]:
            out.print(f"[yellow]quarantined[/] {_plain(line)}", highlight=False)
    for day in result.get("days", []):
        if day.get("empty"):
            out.print(f"[bold]{day['date']}[/]: no events; left incomplete", highlight=False)
            continue
        state = " (unchanged since the last run)" if day.get("skipped") else ""
        out.print(
            f"[bold]{day['date']}[/]: {day.get('alerts', 0)} alert(s) in "
            f"{day.get('incident_count', 0)} incident(s), {day.get('to_triage', 0)} to triage, "
            f"{day.get('suppressed', 0)} suppressed{state}",
            highlight=False,
        )
        for incident in day.get("top_incidents", []):
            out.print(f"  incident: {one_line(incident)}", highlight=False, soft_wrap=True)
        if day.get("report_html"):
            out.print(f"  report: {_plain(str(day['report_html']))}", highlight=False)
        for export in day.get("exports", []):
            out.print(
                f"  {_plain(str(export['sink']))} → {_plain(str(export['destination']))}: "
                f"sent {export['sent']}, already sent {export['already_sent']}",
                highlight=False,
            )


def serve_command(
    source: SourceOption,
    lake: LakeOption,
    config: ConfigOption = None,
    cron: Annotated[
        str,
        typer.Option(envvar="KEYTRAIL_NIGHTLY_CRON", help="When to run, cron syntax, in UTC."),
    ] = "30 2 * * *",
    name: Annotated[str, typer.Option(help="Deployment name.")] = "nightly",
    sink: SinkOption = None,
    endpoint_url: EndpointUrlOption = None,
    task_runner: TaskRunnerOption = TaskRunnerName.THREAD,
    dask_address: DaskAddressOption = None,
    dask_workers: DaskWorkersOption = None,
    verbose: VerboseOption = False,
    inventory_region: InventoryRegionOption = None,
    hec_token_block: HecTokenBlockOption = None,
    lake_kms_key: LakeKmsKeyOption = None,
) -> None:
    """Run the nightly flow on a schedule, against the Prefect server PREFECT_API_URL names.

    Registers the deployment keytrail-nightly/NAME with the cron schedule (UTC) and runs its
    flow runs in this process until interrupted. Needs a Prefect server (`prefect server
    start`) or a Prefect Cloud workspace: only a server schedules. See docs/deploy.md.

    Example:

        [bold]PREFECT_API_URL=http://127.0.0.1:4200/api \\
            keytrail serve --source s3://trail --lake /var/lib/keytrail/lake \\
            --cron "30 2 * * *"[/]
    """
    if dask_address and task_runner is not TaskRunnerName.DASK:
        raise _fail("--dask-address needs --task-runner dask")
    sinks = list(sink or [])
    _check_settings(config, sinks)
    problem = local_lake_problem(lake, creates=True)
    if problem is not None:
        raise _fail(problem)
    _quiet_prefect_defaults()
    from prefect.schedules import Cron

    try:
        schedule = Cron(cron, timezone="UTC")
    except ValueError as exc:
        raise _fail(f"--cron {cron!r}: {exc}") from None
    require_server()
    from flows.nightly import nightly
    from flows.runtime import make_task_runner

    runner = make_task_runner(task_runner.value, dask_address, dask_workers, verbose)
    parameters: dict[str, Any] = {
        "source": source,
        "lake": lake if is_remote(lake) else str(Path(lake).resolve()),
        "config": str(config.resolve()) if config else None,
        "sinks": sinks or None,
        "endpoint_url": endpoint_url,
        "inventory_regions": list(inventory_region or []) or None,
        "hec_token_block": hec_token_block,
        "lake_kms_key": lake_kms_key,
    }
    nightly.with_options(task_runner=runner).serve(
        name=name,
        schedules=[schedule],
        parameters={k: v for k, v in parameters.items() if v is not None},
        description=f"keytrail nightly: {source} → {lake}, at {cron} UTC",
        tags=["keytrail"],
    )


def require_server() -> str:
    """The URL of a Prefect server that answers, or a clear refusal."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise _fail(
            "keytrail serve schedules runs through a Prefect server, and PREFECT_API_URL names "
            "none. Start one (prefect server start) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, or log in to Prefect Cloud (prefect "
            "cloud login). To run once without a server: keytrail run."
        )
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise _fail(
            f"no Prefect server answers at PREFECT_API_URL={url} ({problem}); start it "
            f"(prefect server start) or fix the URL"
        )
    return str(url)


def sample_days(samples: Path) -> tuple[dt.date, dt.date]:
    """First and last event day of a generated trail: from its labels.json, else its folders."""
    labels = samples / "labels.json"
    if labels.exists():
        info = json.loads(labels.read_text())
        first = dt.date.fromisoformat(info["start"])
        return first, first + dt.timedelta(days=int(info["days"]) - 1)
    from analytics.adapters.sources import LocalSource
    from analytics.ingest.layout import Kind, classify

    delivered = set()
    for ref in LocalSource(samples).list_objects(None):
        kind, name = classify(ref.key)
        if kind is Kind.LOG and name is not None:
            delivered.add(name.delivered)
    if not delivered:
        raise ValueError(f"no CloudTrail log files under {samples}")
    # The last folder holds late deliveries of the day before it.
    return min(delivered), max(min(delivered), max(delivered) - dt.timedelta(days=1))


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``serve`` to the ``keytrail`` app."""
    app.command("run")(run_command)
    app.command("serve")(serve_command)
