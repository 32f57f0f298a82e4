"""``keytrail report`` and ``keytrail export``: the publishing end of the nightly run.

Registered on the main app by :func:`register` (``flows.cli`` calls it), kept in its own module
so the publishing options — sinks, tokens, inventory credentials — stay out of the ingest and
detection commands. Helpers of the main CLI (``plain``, ``_fail``) are imported inside the
commands, because ``flows.cli`` imports this module while it is itself being imported.

Exit codes of ``export``: 0 every pending alert was delivered (or none was pending); 1 some
alerts were not delivered — the destination rejected individual findings, kept failing with
throttling/5xx, or (Splunk HEC with acks) did not acknowledge them in time — and a rerun will
send just those; 2 bad usage, or the destination refused
(a 4xx such as a bad token or malformed request): fix it, then rerun.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flows.console import fail as _fail
from flows.console import parse_date, terminal
from flows.console import plain as _plain
from flows.lake_access import (
    EndpointUrlOption,
    LakeKmsKeyOption,
    LakeOption,
    LockWaitOption,
    command_lake,
    shown_file,
)
from flows.sinks import HEC_TOKEN_ENV, hec_token

if TYPE_CHECKING:
    from analytics.adapters.lake import LocalLake
    from analytics.publish.export.settings import HecSettings
    from analytics.publish.export.sinks import Sink

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2

HEC_PANEL = "Splunk HEC (--sink splunk-hec)"


class SinkName(enum.StrEnum):
    OCSF_FILE = "ocsf-file"
    S3 = "s3"
    SPLUNK_HEC = "splunk-hec"
    SECURITYHUB = "securityhub"


def _day(value: str) -> dt.date:
    day = parse_date(value, "--date")
    assert day is not None
    return day


def report_command(
    lake: LakeOption,
    date: Annotated[str, typer.Option(help="Day to report on (UTC), YYYY-MM-DD.")],
    inventory: Annotated[
        bool,
        typer.Option(
            "--inventory",
            help="Also ask the KMS API (ListKeys, DescribeKey, GetKeyRotationStatus, "
            "ListKeyRotations) for the credentials' account; needs AWS credentials.",
        ),
    ] = False,
    region: Annotated[
        list[str] | None,
        typer.Option(help="Region for --inventory (repeatable; default: regions of keys seen)."),
    ] = None,
    endpoint_url: EndpointUrlOption = None,
    config: Annotated[
        Path | None, typer.Option(help="keytrail.toml (organisation accounts).")
    ] = None,
    top_actors: Annotated[int, typer.Option(min=1, help="Actors listed per key.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    lake_kms_key: LakeKmsKeyOption = None,
    wait: LockWaitOption = 0.0,
) -> None:
    """Write the day's reports: key usage, rotation, policy and grant audit, key inventory,
    report.html and report.md, under LAKE/reports/D/.

    Example:

        [bold]keytrail report --lake ./lake --date 2026-11-28 \\
            --inventory --region eu-west-1[/]
    """
    from analytics.config import ConfigError
    from analytics.config import load as load_config

    day = _day(date)
    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    with command_lake(
        lake,
        f"keytrail report {day}",
        endpoint_url=endpoint_url,
        kms_key_id=lake_kms_key,
        wait_seconds=wait,
    ) as local:
        report, files = _write_report(local, day, settings, inventory, region or [],
                                      endpoint_url, top_actors, lake)  # fmt: skip
        shown = {name: shown_file(lake, local, path.relative_to(local.root).as_posix())
                 for name, path in files.items()}  # fmt: skip
        folder = shown_file(lake, local, _report_dir(local, day).relative_to(local.root).as_posix())
    notes = report.notes
    summary = {**report.summary(), "files": shown}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    out = terminal()
    table = Table(title=f"report {day}", show_header=False, box=None)
    from analytics.publish.reports.text import HEADLINE_LABELS

    for name, value in report.headline.items():
        table.add_row(HEADLINE_LABELS.get(name, name), f"{value:,}")
    out.print(table)
    for note in notes:
        out.print(f"[yellow]note:[/] {_plain(note)}", highlight=False)
    out.print(f"wrote {len(files)} files to {_plain(folder)}")


def _report_dir(local: Any, day: dt.date) -> Path:
    from analytics.publish import reports

    return Path(reports.report_dir(local, day))


def _write_report(
    local: Any,
    day: dt.date,
    settings: Any,
    inventory: bool,
    regions: list[str],
    endpoint_url: str | None,
    top_actors: int,
    lake_name: str,
) -> tuple[Any, dict[str, Path]]:
    from analytics.publish import reports

    if not local.event_files(day):
        raise _fail(f"no events for {day} in the lake; run keytrail ingest first")
    window = settings.baseline_window_days
    inputs = reports.load(local, day, window, frozenset(settings.org_accounts), settings, lake_name)
    snapshots: list[Any] = []
    notes: list[str] = []
    if inventory:
        snapshots, notes = _inventory(inputs.key_activity, regions, endpoint_url)
    report = reports.build(
        inputs,
        dt.datetime.now(dt.UTC).replace(microsecond=0),
        snapshots,
        top_actors=top_actors,
        window_days=window,
        notes=notes,
    )
    return report, reports.write(local, report)


def _inventory(
    activity: Any, regions: list[str], endpoint_url: str | None
) -> tuple[list[Any], list[str]]:
    from analytics.adapters.kms_inventory import InventoryError, snapshot

    wanted = set(regions)
    if not wanted:
        arns = activity.get_column("key_arn").to_list() if activity.height else []
        wanted = {arn.split(":")[3] for arn in arns if arn.count(":") >= 5}
    if not wanted:
        raise _fail("--inventory: no region to ask; give --region")
    try:
        result = snapshot(sorted(wanted), endpoint_url=endpoint_url)
    except InventoryError as exc:
        raise _fail(str(exc)) from None
    notes = [f"KMS inventory: {error}" for error in result.errors]
    notes.insert(0, f"KMS inventory of {', '.join(sorted(wanted))}: {len(result.keys)} key(s)")
    return result.keys, notes


def _sink(
    sink: SinkName,
    lake: LocalLake,
    day: dt.date,
    output: Path | None,
    s3_uri: str | None,
    hec_url: str | None,
    hec_token_block: str | None,
    hec: HecSettings,
    region: str | None,
    endpoint_url: str | None,
) -> Sink:
    targets = {SinkName.OCSF_FILE: str(output) if output else None, SinkName.S3: s3_uri,
               SinkName.SPLUNK_HEC: hec_url, SinkName.SECURITYHUB: region}  # fmt: skip
    if sink is SinkName.S3 and not (s3_uri or "").startswith("s3://"):
        raise _fail("--sink s3 needs --s3-uri s3://bucket[/prefix]")
    if sink is SinkName.SPLUNK_HEC and not (hec_url or hec.url):
        raise _fail("--sink splunk-hec needs --hec-url https://splunk:8088 (or [hec] url)")
    from analytics.publish.export.settings import sink_for

    try:
        return sink_for(sink.value, targets[sink], lake=lake, day=day, hec_settings=hec,
                        token=lambda: hec_token(hec_token_block),
                        endpoint_url=endpoint_url)  # fmt: skip
    except ValueError as exc:
        raise _fail(str(exc)) from None


class HecAcks(enum.StrEnum):
    ON = "on"
    OFF = "off"


def export_command(
    lake: LakeOption,
    date: Annotated[str, typer.Option(help="Day whose alerts to export (UTC), YYYY-MM-DD.")],
    sink: Annotated[SinkName, typer.Option(help="Where the alerts go.")],
    output: Annotated[
        Path | None,
        typer.Option(help="ocsf-file: file to write (default: beside the day's alerts)."),
    ] = None,
    s3_uri: Annotated[
        str | None, typer.Option(help="s3: where to write, s3://bucket or s3://bucket/prefix.")
    ] = None,
    hec_url: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: collector base URL, e.g. https://splunk:8088.",
        ),
    ] = None,
    hec_token_block: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            help=f"splunk-hec: Prefect Secret block holding the token (else ${HEC_TOKEN_ENV}).",
        ),
    ] = None,
    hec_index: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=HEC_PANEL, help="splunk-hec: index to write to (default: the token's)."
        ),
    ] = None,
    hec_sourcetype: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: sourcetype (default: ocsf:detection_finding).",
        ),
    ] = None,
    hec_acks: Annotated[
        HecAcks | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: 'on' counts an alert delivered only when the indexer acknowledges "
            "it (the token needs indexer acknowledgement); 'off' counts a 200, unconfirmed "
            "(default: on).",
        ),
    ] = None,
    hec_ack_timeout: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            min=0.001,
            metavar="<seconds>",
            help="splunk-hec: seconds to wait for acknowledgements (default: 120).",
        ),
    ] = None,
    hec_ca_bundle: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: PEM file of the CA that signed the collector's certificate.",
        ),
    ] = None,
    no_hec_verify: Annotated[
        bool,
        typer.Option(
            "--no-hec-verify",
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: do not verify the collector's TLS certificate (test collectors "
            "only; verified by default).",
        ),
    ] = False,
    hec_max_batch_bytes: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=HEC_PANEL,
            min=1000,
            metavar="<bytes>",
            help="splunk-hec: bytes per request (default: 800000).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="keytrail.toml ([hec] holds the Splunk HEC settings).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="securityhub/s3: AWS region (default: AWS_REGION).")
    ] = None,
    endpoint_url: EndpointUrlOption = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            min=1,
            rich_help_panel=HEC_PANEL,
            help="splunk-hec: tries per request on throttling, 5xx, timeouts (default: 6).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    lake_kms_key: LakeKmsKeyOption = None,
    wait: LockWaitOption = 0.0,
) -> None:
    """Send the day's alerts to a SIEM, each alert once (suppressed alerts are not exported).

    A ledger per sink under LAKE/_state/exports/ remembers what was delivered, so a rerun sends
    only what is new or failed. Formats: OCSF Detection Finding (class 2004) for ocsf-file, s3
    and splunk-hec; ASFF for securityhub. Splunk HEC alerts count as delivered when the indexer
    acknowledges them (the token needs indexer acknowledgement; --hec-acks off to count a 200).

    Examples:

        [bold]keytrail export --lake ./lake --date 2026-11-28 --sink ocsf-file[/]

        [bold]export KEYTRAIL_HEC_TOKEN=…[/]

        [bold]keytrail export --lake ./lake --date 2026-11-28 --sink splunk-hec \\
        --hec-url https://splunk:8088 --hec-index kms --hec-ca-bundle ca.pem[/]
    """
    from analytics.config import ConfigError
    from analytics.config import load as load_config
    from analytics.detect.scoring import was_scored
    from analytics.publish.export import SinkError, export

    day = _day(date)
    try:
        settings = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    hec = settings.hec.merged(
        url=hec_url, index=hec_index, sourcetype=hec_sourcetype,
        acks=None if hec_acks is None else hec_acks is HecAcks.ON,
        ack_timeout_seconds=hec_ack_timeout,
        ca_bundle=str(hec_ca_bundle) if hec_ca_bundle else None,
        verify=False if no_hec_verify else None,
        max_batch_bytes=hec_max_batch_bytes, attempts=max_attempts,
    )  # fmt: skip
    try:
        with command_lake(
            lake,
            f"keytrail export {day}",
            endpoint_url=endpoint_url,
            kms_key_id=lake_kms_key,
            wait_seconds=wait,
        ) as local:
            if not was_scored(local, day):
                raise _fail(f"{day} was not scored in {lake}; run keytrail detect first")
            target = _sink(sink, local, day, output, s3_uri, hec.url, hec_token_block, hec,
                           region, endpoint_url)  # fmt: skip
            result = export(local, day, target)
    except SinkError as exc:
        partial = exc.result.to_dict() if exc.result else {}
        if as_json:
            from analytics.redact import redact

            typer.echo(json.dumps({**partial, "error": redact(str(exc)),
                                   "retryable": exc.retryable}, indent=2))  # fmt: skip
        else:
            from flows.console import console

            console.print(f"[bold red]error:[/] {_plain(str(exc))}", highlight=False)
            if partial.get("sent"):
                console.print(f"{partial['sent']} alert(s) were delivered before the error")
            _print_failed(console, partial.get("failed") or [])
        raise typer.Exit(EXIT_INCOMPLETE if exc.retryable else EXIT_USAGE) from None
    summary = result.to_dict()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        out = terminal()
        unconfirmed = f", unconfirmed {len(result.unconfirmed)}" if result.unconfirmed else ""
        out.print(
            f"{_plain(result.sink)} → {_plain(result.destination)}: sent {result.sent}, "
            f"already sent {result.already_sent}, suppressed (not exported) {result.suppressed}, "
            f"failed {len(result.failed)}{unconfirmed}; delivery: {_plain(result.delivery)}",
            highlight=False,
        )
        for note in result.notes:
            out.print(f"[yellow]note:[/] {_plain(note)}", highlight=False)
        _print_failed(out, result.failed)
    if not result.complete:
        raise typer.Exit(EXIT_INCOMPLETE)


def _print_failed(out: Console, failed: list[dict[str, str]], shown: int = 20) -> None:
    """The alerts a destination refused one by one (each with its reason), the first ``shown``."""
    for failure in failed[:shown]:
        out.print(
            f"[red]failed[/] {_plain(failure['alert_id'])}: {_plain(failure['reason'])}",
            highlight=False,
        )
    if len(failed) > shown:
        out.print(f"… and {len(failed) - shown} more (--json lists them all)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``export`` to the ``keytrail`` app."""
    app.command("report")(report_command)
    app.command("export")(export_command)
