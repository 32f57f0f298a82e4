"""Alert sinks: where alerts go, and the export that feeds them exactly once.

Four sinks share one contract (:class:`Sink`): split the pending alerts into batches the
destination accepts, send a batch, and say which alerts it accepted. :func:`export` does the
rest the same way for all of them — drop suppressed alerts, skip the ones the sink's ledger
says were delivered, send batch by batch, and record each accepted batch in the ledger before
sending the next — so "a rerun sends nothing twice" is one piece of code, not four.

* ``ocsf-file`` — OCSF JSON Lines beside the day's alerts
  (``LAKE/alerts/event_date=D/alerts.ocsf.jsonl``) or at a given path; new findings are added to
  the file, which is rewritten atomically.
* ``s3`` — OCSF JSON Lines as one new object per export run under a prefix
  (``…/event_date=D/alerts-<digest>.ocsf.jsonl``), named by the digest of the alert IDs it
  holds: consumers that ingest each new object once (Security Lake, Splunk's SQS-based S3
  input) get each alert once, and a retried upload overwrites the same object.
* ``splunk-hec`` — HTTP Event Collector, batched, retried with exponential backoff on
  throttling (429), 5xx and network errors, honouring ``Retry-After``; a batch refused as too
  large (413) is split and sent in halves, and an event refused on its own is reported as failed
  while the rest are delivered; any other 4xx stops the export with HEC's own explanation. The
  token is sent only in the ``Authorization`` header, never logged, never in an error message,
  and redirects are refused so it cannot follow one to another host.
* ``securityhub`` — ``BatchImportFindings`` in ASFF, 100 findings per call; findings the API
  rejects are reported by ID and not recorded, so the next run tries them again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import orjson
import polars as pl

from analytics import schema as s
from analytics.adapters.lake import LocalLake, write_bytes_atomic
from analytics.adapters.securityhub import MAX_BATCH, SecurityHub, SecurityHubError
from analytics.detect import alerts_path, read_alerts
from analytics.export import asff, hec, ocsf
from analytics.export.bounds import MAX_EVIDENCE_EVENTS
from analytics.export.idempotency import Ledger
from analytics.redact import redact

OCSF_FILE_NAME = "alerts.ocsf.jsonl"


class SinkError(RuntimeError):
    """An export stopped. ``retryable``: a later run may succeed (throttled, server down);
    otherwise the destination refused and something must be fixed first. ``result`` holds what
    was delivered before the stop; ``partial`` what the failing batch got delivered before it
    stopped (recorded in the ledger, so a rerun does not send it again)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.result: ExportResult | None = None
        self.partial: BatchOutcome | None = None


class _TooLarge(Exception):
    """The collector refused a request as too large (413): send less at a time."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base_delay`` × 2ⁿ, capped at ``max_delay``, ``attempts`` tries."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_delay, self.base_delay * float(2**attempt))
        if retry_after is not None:
            return float(min(self.max_delay, max(backoff, retry_after)))
        return float(backoff)


@dataclass(frozen=True)
class ExportItem:
    """One alert ready to send: the alert row and its OCSF finding."""

    alert_id: str
    alert: dict[str, Any]
    finding: dict[str, Any]


@dataclass
class BatchOutcome:
    accepted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0


class Sink(Protocol):
    """Where alerts go. ``name`` picks the ledger; ``destination`` identifies the place (never
    with a secret in it) so a second Splunk or bucket is a separate delivery."""

    @property
    def name(self) -> str: ...

    @property
    def destination(self) -> str: ...

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]: ...

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome: ...


# --- OCSF JSON Lines file ---------------------------------------------------------------------


@dataclass(frozen=True)
class OcsfFileSink:
    path: Path
    name: str = "ocsf-file"

    @property
    def destination(self) -> str:
        return str(self.path)

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return [list(items)] if items else []

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome:
        existing = self.path.read_bytes() if self.path.exists() else b""
        present = set()
        for line in existing.splitlines():
            try:
                present.add(orjson.loads(line).get("finding_info", {}).get("uid"))
            except (orjson.JSONDecodeError, AttributeError):
                continue
        fresh = [item.finding for item in batch if item.alert_id not in present]
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        try:
            write_bytes_atomic(existing + ocsf.jsonl(fresh), self.path)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return BatchOutcome(accepted=[item.alert_id for item in batch])


# --- S3 object --------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Sink:
    uri: str
    endpoint_url: str | None = None
    region: str | None = None
    name: str = "s3"

    @property
    def destination(self) -> str:
        return self.uri.rstrip("/")

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return [list(items)] if items else []

    def object_key(self, batch: Sequence[ExportItem]) -> tuple[str, str]:
        from analytics.adapters.s3 import split_uri

        bucket, prefix = split_uri(self.uri)
        day = batch[0].alert.get(s.EVENT_DATE)
        day_text = day.isoformat() if isinstance(day, dt.date) else "unknown"
        digest = hashlib.sha256(
            "\n".join(sorted(item.alert_id for item in batch)).encode()
        ).hexdigest()[:16]
        folder = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        return bucket, f"{folder}{s.EVENT_DATE}={day_text}/alerts-{digest}.ocsf.jsonl"

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome:
        # boto3 stays behind the S3 adapter: its client (and the client's exception classes)
        # come from there, so this module never imports the AWS SDK itself.
        from analytics.adapters.s3 import aws_problem, explain, s3_client
        from analytics.adapters.sources import SourceError

        try:
            bucket, key = self.object_key(batch)
        except SourceError as exc:
            raise SinkError(str(exc)) from None
        body = ocsf.jsonl(item.finding for item in batch)
        client = s3_client(self.endpoint_url, self.region)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        except client.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            raise SinkError(
                explain(exc, bucket, key, "PutObject"), retryable=int(status) >= 500
            ) from None
        except Exception as exc:  # botocore's connection and timeout errors, after its retries
            problem = aws_problem(exc, self.endpoint_url)  # no endpoint or no credentials: fix it
            if problem is not None:
                raise SinkError(f"s3://{bucket}/{key}: {problem}", retryable=False) from None
            raise SinkError(
                redact(f"s3://{bucket}/{key}: upload failed ({exc})"), retryable=True
            ) from None
        return BatchOutcome(accepted=[item.alert_id for item in batch])


# --- Splunk HTTP Event Collector --------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the token to wherever it points."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str,
        headers: Message, newurl: str,
    ) -> urllib.request.Request | None:  # fmt: skip
        return None


def _retry_after(headers: Message | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class HecSink:
    url: str
    token: str = field(repr=False)
    index: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    max_events: int = hec.MAX_BATCH_EVENTS
    name: str = "splunk-hec"

    @property
    def destination(self) -> str:
        """The collector as shown and recorded in the ledger: credentials in the URL masked."""
        return redact(hec.collector_url(self.url))

    def _redact(self, text: str) -> str:
        text = text.replace(self.token, "***") if self.token else text
        return redact(text)

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return hec.batches(items, self._size, self.max_events)

    def _size(self, item: ExportItem) -> int:
        return len(hec.encode(hec.envelope(item.finding, index=self.index)))

    def _post(self, payload: bytes) -> None:
        url = self.destination
        request = urllib.request.Request(  # noqa: S310 - collector_url admits only http(s)
            hec.collector_url(self.url),
            data=payload,
            method="POST",
            headers={"Authorization": f"Splunk {self.token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                status, text, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, text, headers = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, TimeoutError, ConnectionError,
                http.client.HTTPException) as exc:  # fmt: skip
            reason = getattr(exc, "reason", exc)
            raise _Transient(self._redact(f"cannot reach {url}: {reason}")) from None
        if 200 <= status < 300:
            return
        detail = self._detail(text)
        if status == 413:
            raise _TooLarge(detail)
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}{detail}", _retry_after(headers))
        if status in (401, 403):
            raise SinkError(self._redact(
                f"Splunk HEC at {url} rejected the token (HTTP {status}{detail}); check "
                "KEYTRAIL_HEC_TOKEN or the Secret block given with --hec-token-block"
            ))  # fmt: skip
        if 300 <= status < 400:
            raise SinkError(self._redact(
                f"Splunk HEC at {url} answered with a redirect (HTTP {status}); give the final "
                "collector URL with --hec-url"
            ))  # fmt: skip
        raise SinkError(self._redact(f"Splunk HEC at {url} refused the batch (HTTP {status}"
                                     f"{detail}); nothing more was sent"))  # fmt: skip

    def _detail(self, text: bytes) -> str:
        """HEC's own explanation (``{"text": …, "code": …}``), clipped and redacted."""
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            snippet = text[:200].decode("utf-8", errors="replace").strip()
            return f": {self._redact(snippet)}" if snippet else ""
        if isinstance(answer, dict) and "text" in answer:
            return self._redact(f": {str(answer['text'])[:200]} (HEC code {answer.get('code')})")
        return ""

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome:
        """Post the batch; a batch the collector finds too large (413) is split in halves and
        each sent on its own, down to single events — an event still refused alone is reported
        as failed and the others are delivered all the same."""
        outcome = BatchOutcome()
        try:
            self._send_part(list(batch), outcome)
        except SinkError as exc:
            exc.partial = outcome
            raise
        return outcome

    def _send_part(self, batch: list[ExportItem], outcome: BatchOutcome) -> None:
        payload = hec.body(hec.envelope(item.finding, index=self.index) for item in batch)
        try:
            outcome.retries += self._post_retrying(payload)
        except _TooLarge as exc:
            if len(batch) == 1:
                outcome.failed.append((batch[0].alert_id, self._redact(
                    f"Splunk HEC refused the event as too large ({len(payload):,} bytes, "
                    f"HTTP 413{exc}); raise max_content_length or lower the output bounds"
                )))  # fmt: skip
                return
            half = len(batch) // 2
            self._send_part(batch[:half], outcome)
            self._send_part(batch[half:], outcome)
            return
        outcome.accepted.extend(item.alert_id for item in batch)

    def _post_retrying(self, payload: bytes) -> int:
        """Post until accepted, retrying transient failures; returns the number of retries."""
        last: _Transient | None = None
        for attempt in range(self.policy.attempts):
            try:
                self._post(payload)
                return attempt
            except _Transient as exc:
                last = exc
                if attempt + 1 < self.policy.attempts:
                    self.policy.sleep(self.policy.delay(attempt, exc.retry_after))
        raise SinkError(
            self._redact(f"Splunk HEC at {self.destination} still failing after "
                         f"{self.policy.attempts} attempts ({last}); try again later"),
            retryable=True,
        )  # fmt: skip


# --- AWS Security Hub -------------------------------------------------------------------------


@dataclass
class SecurityHubSink:
    hub: SecurityHub
    account_id: str | None = None
    name: str = "securityhub"

    @property
    def destination(self) -> str:
        return f"securityhub:{self.hub.region}:{self._account()}"

    def _account(self) -> str:
        if self.account_id is None:
            try:
                self.account_id = self.hub.account_id()
            except SecurityHubError as exc:
                raise SinkError(str(exc), retryable=exc.transient) from None
        return self.account_id

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return [list(items[i : i + MAX_BATCH]) for i in range(0, len(items), MAX_BATCH)]

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome:
        account = self._account()
        findings = [asff.finding(item.alert, account_id=account, region=self.hub.region)
                    for item in batch]  # fmt: skip
        try:
            outcome = self.hub.import_findings(findings)
        except SecurityHubError as exc:
            raise SinkError(str(exc), retryable=exc.transient) from None
        return BatchOutcome(accepted=outcome.accepted, failed=outcome.failed)


# --- the export -------------------------------------------------------------------------------


@dataclass
class ExportResult:
    sink: str
    destination: str
    date: str
    alerts: int = 0
    suppressed: int = 0
    already_sent: int = 0
    sent: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    batches: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "destination": self.destination,
            "date": self.date,
            "alerts": self.alerts,
            "suppressed_not_exported": self.suppressed,
            "already_sent": self.already_sent,
            "sent": self.sent,
            "failed": self.failed,
            "batches": self.batches,
            "retries": self.retries,
        }


def product_version() -> str:
    try:
        return metadata.version("keytrail")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def prepare(
    alerts: pl.DataFrame,
    day_events: pl.DataFrame | None = None,
    version: str | None = None,
) -> list[ExportItem]:
    """Unsuppressed alerts as export items, with up to :data:`MAX_EVIDENCE_EVENTS` evidence
    events each (when ``day_events`` is given), in a stable order."""
    version = version or product_version()
    active = alerts.filter(pl.col(s.SUPPRESSED_BY).is_null()).sort(s.WINDOW_START, s.ALERT_ID)
    events_by_id: dict[str, dict[str, Any]] = {}
    if day_events is not None and not day_events.is_empty() and not active.is_empty():
        wanted = {
            event_id
            for ids in active.get_column(s.EVIDENCE_EVENT_IDS).to_list()
            for event_id in (ids or [])[:MAX_EVIDENCE_EVENTS]
        }
        subset = day_events.filter(pl.col(s.EVENT_ID).is_in(sorted(wanted)))
        events_by_id = {row[s.EVENT_ID]: row for row in subset.iter_rows(named=True)}
    items = []
    for alert in active.iter_rows(named=True):
        ids = (alert.get(s.EVIDENCE_EVENT_IDS) or [])[:MAX_EVIDENCE_EVENTS]
        events = [events_by_id[i] for i in ids if i in events_by_id]
        finding = ocsf.finding(alert, product_version=version, events=events)
        items.append(ExportItem(alert[s.ALERT_ID], alert, finding))
    return items


def default_ocsf_path(lake: LocalLake, day: dt.date) -> Path:
    """``LAKE/alerts/event_date=D/alerts.ocsf.jsonl``, beside the day's alerts."""
    return Path(alerts_path(lake, day)).with_name(OCSF_FILE_NAME)


def _day_events(lake: LocalLake, day: dt.date) -> pl.DataFrame | None:
    files = lake.partition_files(day)
    return pl.read_parquet(files, hive_partitioning=False) if files else None


def deliver(
    items: Sequence[ExportItem],
    sink: Sink,
    ledger: Ledger,
    day: dt.date,
    result: ExportResult,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ExportResult:
    """Send the items the ledger has not seen, batch by batch, recording each accepted batch."""
    already = ledger.sent(sink.destination)
    pending = [item for item in items if item.alert_id not in already]
    result.already_sent = len(items) - len(pending)
    for batch in sink.batches(pending):
        try:
            outcome = sink.send(batch)
        except SinkError as exc:
            if exc.partial is not None:
                _count(exc.partial, sink, ledger, day, result, clock())
            exc.result = result
            raise
        _count(outcome, sink, ledger, day, result, clock())
        result.batches += 1
    return result


def _count(
    outcome: BatchOutcome,
    sink: Sink,
    ledger: Ledger,
    day: dt.date,
    result: ExportResult,
    at: dt.datetime,
) -> None:
    """Record what a batch delivered in the ledger, then in the result."""
    ledger.record(outcome.accepted, sink.destination, day, at)
    result.retries += outcome.retries
    result.sent += len(outcome.accepted)
    result.failed.extend({s.ALERT_ID: fid, "reason": why} for fid, why in outcome.failed)


def export(
    lake: LocalLake,
    day: dt.date,
    sink: Sink,
    *,
    version: str | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ExportResult:
    """Export the day's unsuppressed alerts to ``sink``, each alert at most once."""
    alerts = read_alerts(lake, day)
    items = prepare(alerts, _day_events(lake, day), version)
    result = ExportResult(sink.name, sink.destination, day.isoformat(), alerts=alerts.height,
                          suppressed=alerts.height - len(items))  # fmt: skip
    return deliver(items, sink, Ledger(lake, sink.name), day, result, clock)
