"""Alert sinks: where alerts go, and the export that feeds them exactly once.

Four sinks share one contract (:class:`Sink`): split the pending alerts into batches the
destination accepts, send a batch, and say which alerts it accepted. :func:`export` does the
rest the same way for all of them — drop suppressed alerts, skip the ones the sink's ledger
says were delivered, send batch by batch, and record each accepted batch in the ledger before
sending the next — so "a rerun sends nothing twice" is one piece of code, not four.

* ``ocsf-file`` — OCSF JSON Lines in the lake (``LAKE/ocsf/event_date=D/alerts.ocsf.jsonl``) or
  at a given path; new findings are added to the file, which is rewritten atomically.
* ``s3`` — OCSF JSON Lines as one new object per export run under a prefix
  (``…/event_date=D/alerts-<digest>.ocsf.jsonl``), named by the digest of the alert IDs it
  holds: consumers that ingest each new object once (Security Lake, Splunk's SQS-based S3
  input) get each alert once, and a retried upload overwrites the same object.
* ``splunk-hec`` — HTTP Event Collector (httpx: one client per run, TLS verified against the
  system's or a given CA bundle), batched under a byte limit, retried with exponential backoff
  on throttling (429), 5xx and network errors, honouring ``Retry-After``; a batch refused as too
  large (413) is split and sent in halves, and an event refused on its own is reported as failed
  while the rest are delivered; any other 4xx stops the export with HEC's own explanation. An
  alert counts as delivered when the indexer acknowledges its batch (or, with acks turned off,
  when the collector answers 200 — the summary then says delivery was not confirmed). The token
  is sent only in the ``Authorization`` header, never logged, never in an error message, and
  redirects are refused so it cannot follow one to another host.
* ``securityhub`` — ``BatchImportFindings`` in ASFF, 100 findings per call; findings the API
  rejects are reported by ID and not recorded, so the next run tries them again.

The OCSF sinks (file, S3, HEC) also take the day's incidents, as OCSF Incident Findings after
the alerts they link, recorded in the ledger as ``incident_id:version``
(:func:`prepare_incidents`); Security Hub links an incident's alerts by ``RelatedFindings``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import polars as pl

from analytics.adapters.lake import LocalLake, write_bytes_atomic
from analytics.adapters.lake_fs import LakeFS
from analytics.adapters.securityhub import MAX_BATCH, SecurityHub, SecurityHubError
from analytics.detect.scoring import read_alerts, read_incidents
from analytics.lake import schema as s
from analytics.publish.export import asff, hec, ocsf
from analytics.publish.export.bounds import MAX_EVIDENCE_EVENTS
from analytics.publish.export.idempotency import Ledger
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


ALERT = "alert"
INCIDENT = "incident"


@dataclass(frozen=True)
class ExportItem:
    """One alert (or, for the OCSF sinks, one incident) ready to send: its row and its OCSF
    finding. ``alert_id`` is the ledger key — for an incident ``incident_id:version``.
    ``related`` are the other exported alerts of the alert's incident."""

    alert_id: str
    alert: dict[str, Any]
    finding: dict[str, Any]
    kind: str = ALERT
    related: tuple[str, ...] = ()


@dataclass
class BatchOutcome:
    """What a destination did with a batch. ``accepted`` are delivered (the ledger records
    them); ``awaiting`` were taken but wait for a confirmation (:meth:`Sink.settle`);
    ``unconfirmed`` never got it; ``failed`` were refused one by one, with the reason."""

    accepted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0
    awaiting: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    note: str = ""


class Sink(Protocol):
    """Where alerts go. ``name`` picks the ledger; ``destination`` identifies the place (never
    with a secret in it) so a second Splunk or bucket is a separate delivery."""

    @property
    def name(self) -> str: ...

    @property
    def destination(self) -> str: ...

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]: ...

    @property
    def delivery(self) -> str:
        """What "sent" means at this destination, as the summary states it."""
        ...

    @property
    def takes_incidents(self) -> bool:
        """Whether incidents go here as findings of their own (OCSF Incident Findings)."""
        ...

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome: ...

    def settle(self) -> BatchOutcome:
        """After the last batch: the confirmations the destination owes (HEC's indexer
        acknowledgements); sinks that confirm on the spot return an empty outcome."""
        ...

    def close(self) -> None: ...


class _ConfirmsOnTheSpot:
    """For sinks whose answer to a batch is already the confirmation."""

    def settle(self) -> BatchOutcome:
        return BatchOutcome()

    def close(self) -> None:
        return None


# --- OCSF JSON Lines file ---------------------------------------------------------------------


@dataclass(frozen=True)
class OcsfFileSink(_ConfirmsOnTheSpot):
    """OCSF JSON Lines in a file: ``path``, or with ``store`` the lake file ``key`` (an S3 lake
    worked on in place, where the file is put whole with each batch)."""

    path: Path
    name: str = "ocsf-file"
    delivery: str = "written"
    takes_incidents: bool = True
    store: LakeFS | None = None
    key: str = ""

    @property
    def destination(self) -> str:
        return self.store.shown(self.key) if self.store is not None else str(self.path)

    def _existing(self) -> bytes:
        if self.store is None:
            return self.path.read_bytes() if self.path.exists() else b""
        return self.store.read_bytes(self.key) if self.store.exists(self.key) else b""

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return [list(items)] if items else []

    def send(self, batch: Sequence[ExportItem]) -> BatchOutcome:
        existing = self._existing()
        present = set()
        for line in existing.splitlines():
            try:
                document = orjson.loads(line)
                present.add(document.get("finding_info", {}).get("uid"))
                present.add(document.get("metadata", {}).get("uid"))  # incidents: id:version
            except (orjson.JSONDecodeError, AttributeError):
                continue
        fresh = [item.finding for item in batch if item.alert_id not in present]
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        try:
            if self.store is not None:
                self.store.write_bytes(self.key, existing + ocsf.jsonl(fresh))
            else:
                write_bytes_atomic(existing + ocsf.jsonl(fresh), self.path)
        except OSError as exc:
            raise SinkError(f"cannot write {self.destination}: {exc.strerror or exc}") from None
        return BatchOutcome(accepted=[item.alert_id for item in batch])


# --- S3 object --------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Sink(_ConfirmsOnTheSpot):
    uri: str
    endpoint_url: str | None = None
    region: str | None = None
    name: str = "s3"
    delivery: str = "stored"
    takes_incidents: bool = True

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


def _retry_after(headers: httpx.Headers | None) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _tls_problem(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under an httpx connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass
class HecSink:
    """Splunk HEC with indexer acknowledgement (``acks``, the default) or without.

    With acks, a batch the collector took is only *sent*: its alerts are delivered when the
    ``/ack`` endpoint says its ``ackId`` is indexed, which :meth:`settle` waits for, at most
    ``ack_timeout`` seconds in all. What is not acknowledged by then is reported as unconfirmed,
    stays out of the ledger and goes again on the next run — never twice within this one. One
    channel (a UUID) per sink, that is per export run, carries every request and poll."""

    url: str
    token: str = field(repr=False)
    index: str | None = None
    sourcetype: str = hec.SOURCETYPE
    acks: bool = True
    ack_timeout: float = hec.ACK_TIMEOUT_SECONDS
    ca_bundle: Path | None = None
    verify: bool = True
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    max_events: int = hec.MAX_BATCH_EVENTS
    max_bytes: int = hec.MAX_BATCH_BYTES
    name: str = "splunk-hec"
    takes_incidents: bool = True
    channel: str = field(default_factory=lambda: str(uuid.uuid4()))
    _awaiting: dict[int, list[str]] = field(default_factory=dict, init=False, repr=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def destination(self) -> str:
        """The collector as shown and recorded in the ledger: credentials in the URL masked."""
        return redact(hec.collector_url(self.url))

    @property
    def delivery(self) -> str:
        return "indexer-acknowledged" if self.acks else "accepted, not confirmed (acks off)"

    def _redact(self, text: str) -> str:
        text = text.replace(self.token, "***") if self.token else text
        return redact(text)

    def batches(self, items: Sequence[ExportItem]) -> list[list[ExportItem]]:
        return hec.batches(items, self._size, self.max_events, self.max_bytes)

    def _envelope(self, item: ExportItem) -> dict[str, Any]:
        return hec.envelope(item.finding, index=self.index, sourcetype=self.sourcetype)

    def _size(self, item: ExportItem) -> int:
        return len(hec.encode(self._envelope(item)))

    def _http(self) -> httpx.Client:
        """One client per run: connections are reused across batches and polls; redirects are
        never followed (the token would go wherever they point)."""
        if self._client is None:
            verify: ssl.SSLContext | bool = False
            if self.verify:
                try:
                    verify = ssl.create_default_context(
                        cafile=str(self.ca_bundle) if self.ca_bundle else None
                    )
                except (OSError, ssl.SSLError) as exc:
                    reason = getattr(exc, "strerror", None) or exc
                    message = f"cannot use the CA bundle {self.ca_bundle}: {reason}"
                    raise SinkError(message) from None
            self._client = httpx.Client(verify=verify, timeout=self.timeout,
                                        follow_redirects=False)  # fmt: skip
        return self._client

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Splunk {self.token}",
            "Content-Type": "application/json",
            hec.CHANNEL_HEADER: self.channel,
        }

    def _post(self, url: str, payload: bytes) -> Any:
        """POST to the collector; returns its JSON answer on 2xx. Raises :class:`_Transient`,
        :class:`_TooLarge` or :class:`SinkError` (with HEC's own explanation) otherwise."""
        shown = self.destination
        try:
            response = self._http().post(url, content=payload, headers=self._headers())
        except httpx.HTTPError as exc:
            tls = _tls_problem(exc)
            if tls is not None:
                if isinstance(tls, ssl.SSLCertVerificationError):
                    what = f"certificate not trusted ({tls.verify_message or tls.reason})"
                else:
                    what = f"handshake failed ({tls.reason or tls})"
                raise SinkError(self._redact(
                    f"Splunk HEC at {shown}: TLS {what}; give the collector's CA with "
                    "--hec-ca-bundle PATH (or [hec] ca_bundle)"
                )) from None  # fmt: skip
            reason = str(exc) or type(exc).__name__
            raise _Transient(self._redact(f"cannot reach {shown}: {reason}")) from None
        status, text = response.status_code, response.content
        if 200 <= status < 300:
            try:
                return orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                return {}
        detail = self._detail(text)
        if status == 413:
            raise _TooLarge(detail)
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}{detail}", _retry_after(response.headers))
        if status in (401, 403):
            raise SinkError(self._redact(
                f"Splunk HEC at {shown} rejected the token (HTTP {status}{detail}); check "
                "KEYTRAIL_HEC_TOKEN or the Secret block given with --hec-token-block"
            ))  # fmt: skip
        if 300 <= status < 400:
            raise SinkError(self._redact(
                f"Splunk HEC at {shown} answered with a redirect (HTTP {status}); give the final "
                "collector URL with --hec-url"
            ))  # fmt: skip
        raise SinkError(self._redact(f"Splunk HEC at {shown} refused the request (HTTP {status}"
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
        as failed and the others are delivered all the same. With acks, what the collector took
        is awaiting acknowledgement (see :meth:`settle`), not yet accepted."""
        outcome = BatchOutcome()
        try:
            self._send_part(list(batch), outcome)
        except SinkError as exc:
            exc.partial = outcome
            raise
        return outcome

    def _send_part(self, batch: list[ExportItem], outcome: BatchOutcome) -> None:
        payload = hec.body(self._envelope(item) for item in batch)
        try:
            retries, answer = self._post_retrying(payload)
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
        outcome.retries += retries
        ids = [item.alert_id for item in batch]
        if not self.acks:
            outcome.accepted.extend(ids)
            return
        ack_id = answer.get("ackId") if isinstance(answer, dict) else None
        if isinstance(ack_id, bool) or not isinstance(ack_id, int):
            raise SinkError(self._redact(
                f"Splunk HEC at {self.destination} took a batch but gave no ackId: indexer "
                "acknowledgement is off for this token. Turn it on for the token, or export "
                "with --hec-acks off (a 200 then counts as delivered, unconfirmed); the batch "
                "is not recorded as delivered"
            ))  # fmt: skip
        self._awaiting[ack_id] = ids
        outcome.awaiting.extend(ids)

    def _post_retrying(self, payload: bytes) -> tuple[int, Any]:
        """Post until accepted, retrying transient failures; returns (retries, answer)."""
        last: _Transient | None = None
        url = hec.collector_url(self.url)
        for attempt in range(self.policy.attempts):
            try:
                return attempt, self._post(url, payload)
            except _Transient as exc:
                last = exc
                if attempt + 1 < self.policy.attempts:
                    self.policy.sleep(self.policy.delay(attempt, exc.retry_after))
        raise SinkError(
            self._redact(f"Splunk HEC at {self.destination} still failing after "
                         f"{self.policy.attempts} attempts ({last}); try again later"),
            retryable=True,
        )  # fmt: skip

    def settle(self) -> BatchOutcome:
        """Wait for the indexer to acknowledge what was sent: poll ``/ack`` on this run's
        channel, pausing longer each time, until every ackId is true or ``ack_timeout`` seconds
        of pauses are used up. Returns the acknowledged alerts as accepted and the rest as
        unconfirmed."""
        outcome = BatchOutcome()
        if not self._awaiting:
            return outcome
        url = hec.ack_url(hec.collector_url(self.url))
        delays = hec.ack_delays(self.ack_timeout)
        problem = ""
        for pause in [*delays, None]:
            try:
                answer = self._post(url, hec.ack_body(self._awaiting))
            except _Transient as exc:
                problem = f" (last poll: {exc})"
            except _TooLarge as exc:
                problem = f" (last poll: HTTP 413{exc})"
            else:
                for ack_id in sorted(hec.acknowledged(answer) & set(self._awaiting)):
                    outcome.accepted.extend(self._awaiting.pop(ack_id))
            if not self._awaiting or pause is None:
                break
            self.policy.sleep(pause)
        for ids in self._awaiting.values():
            outcome.unconfirmed.extend(ids)
        if self._awaiting:
            outcome.note = self._redact(
                f"{len(outcome.unconfirmed)} alert(s) sent to {self.destination} were not "
                f"acknowledged by the indexer within {self.ack_timeout:g} s{problem}; they are "
                "not recorded as delivered and go again on the next run"
            )
        self._awaiting.clear()
        return outcome

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# --- AWS Security Hub -------------------------------------------------------------------------


@dataclass
class SecurityHubSink(_ConfirmsOnTheSpot):
    hub: SecurityHub
    account_id: str | None = None
    name: str = "securityhub"
    delivery: str = "accepted"
    takes_incidents: bool = False  # alerts of one incident are linked by RelatedFindings

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
        findings = [asff.finding(item.alert, account_id=account, region=self.hub.region,
                                 related=item.related)
                    for item in batch if item.kind == ALERT]  # fmt: skip
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
    delivery: str = "accepted"
    unconfirmed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incidents: int = 0
    incidents_sent: int = 0
    incident_keys: set[str] = field(default_factory=set, repr=False)

    @property
    def complete(self) -> bool:
        """Every pending alert was delivered: none refused, none left unconfirmed."""
        return not self.failed and not self.unconfirmed

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "destination": self.destination,
            "date": self.date,
            "alerts": self.alerts,
            "suppressed_not_exported": self.suppressed,
            "already_sent": self.already_sent,
            "sent": self.sent,
            "incidents": self.incidents,
            "incidents_sent": self.incidents_sent,
            "delivery": self.delivery,
            "unconfirmed": self.unconfirmed,
            "failed": self.failed,
            "batches": self.batches,
            "retries": self.retries,
            "notes": self.notes,
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
    members: dict[str, list[str]] = {}
    for alert in active.iter_rows(named=True):
        if alert.get(s.INCIDENT_ID):
            members.setdefault(alert[s.INCIDENT_ID], []).append(alert[s.ALERT_ID])
    items = []
    for alert in active.iter_rows(named=True):
        ids = (alert.get(s.EVIDENCE_EVENT_IDS) or [])[:MAX_EVIDENCE_EVENTS]
        events = [events_by_id[i] for i in ids if i in events_by_id]
        finding = ocsf.finding(alert, product_version=version, events=events)
        related = [
            a for a in members.get(alert.get(s.INCIDENT_ID) or "", []) if a != alert[s.ALERT_ID]
        ]
        items.append(ExportItem(alert[s.ALERT_ID], alert, finding, related=tuple(related)))
    return items


def prepare_incidents(
    incidents: pl.DataFrame, items: Sequence[ExportItem], version: str | None = None
) -> list[ExportItem]:
    """The day's incidents as OCSF Incident Findings, each linking the exported alerts it holds
    (an incident none of whose alerts is exported — all suppressed — is left out). The ledger
    key is ``incident_id:version``, so a rerun sends nothing and a grown incident goes again."""
    version = version or product_version()
    titles = {item.alert_id: str(item.alert.get(s.TITLE) or "") for item in items}
    out = []
    for incident in incidents.sort(s.FIRST_SEEN, s.INCIDENT_ID).iter_rows(named=True):
        uids = [a for a in incident.get(s.ALERT_IDS) or [] if a in titles]
        if not uids:
            continue
        finding = ocsf.incident_finding(incident, uids, titles, product_version=version)
        key = f"{incident[s.INCIDENT_ID]}:{ocsf.incident_version(incident, uids)}"
        out.append(ExportItem(key, incident, finding, kind=INCIDENT, related=tuple(uids)))
    return out


def ocsf_key(day: dt.date) -> str:
    """``ocsf/event_date=D/alerts.ocsf.jsonl``: in a folder of its own, not beside the day's
    ``alerts.parquet``, because Athena, Trino and Spark read every file in a table's folder as
    the table's format, and a JSON file there fails every query of the alerts table."""
    return f"ocsf/{s.EVENT_DATE}={day.isoformat()}/{OCSF_FILE_NAME}"


def default_ocsf_path(lake: LocalLake, day: dt.date) -> Path:
    """:func:`ocsf_key` in a lake folder."""
    return lake.root / ocsf_key(day)


def default_ocsf_sink(lake: LocalLake, day: dt.date) -> OcsfFileSink:
    """The day's OCSF file (:func:`ocsf_key`), in the lake wherever it is."""
    key = ocsf_key(day)
    if lake.in_place:
        return OcsfFileSink(lake.root / key, store=lake.store, key=key)
    return OcsfFileSink(default_ocsf_path(lake, day))


def _day_events(lake: LocalLake, day: dt.date) -> pl.DataFrame | None:
    files = lake.event_files(day)
    if not files:
        return None
    return lake.store.scan_days(files, s.EVENT_COLUMNS, s.EVENT_SCHEMA).collect()


def deliver(
    items: Sequence[ExportItem],
    sink: Sink,
    ledger: Ledger,
    day: dt.date,
    result: ExportResult,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ExportResult:
    """Send the items the ledger has not seen, batch by batch, recording each accepted batch;
    then record what the destination confirms afterwards (:meth:`Sink.settle`) — also when a
    later batch stopped the export, so nothing confirmed is left out of the ledger."""
    already = ledger.sent(sink.destination)
    pending = [item for item in items if item.alert_id not in already]
    result.incident_keys = {item.alert_id for item in items if item.kind == INCIDENT}
    result.already_sent = sum(
        1 for item in items if item.alert_id in already and item.kind == ALERT
    )
    result.delivery = sink.delivery
    try:
        for batch in sink.batches(pending):
            try:
                outcome = sink.send(batch)
            except SinkError as exc:
                if exc.partial is not None:
                    _count(exc.partial, sink, ledger, day, result, clock())
                _settle(sink, ledger, day, result, clock)
                exc.result = result
                raise
            _count(outcome, sink, ledger, day, result, clock())
            result.batches += 1
        _settle(sink, ledger, day, result, clock)
    finally:
        sink.close()
    return result


def _settle(
    sink: Sink, ledger: Ledger, day: dt.date, result: ExportResult,
    clock: Callable[[], dt.datetime],
) -> None:  # fmt: skip
    try:
        outcome = sink.settle()
    except SinkError as exc:
        exc.result = result
        raise
    _count(outcome, sink, ledger, day, result, clock())


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
    incidents = sum(1 for key in outcome.accepted if key in result.incident_keys)
    result.incidents_sent += incidents
    result.sent += len(outcome.accepted) - incidents
    result.unconfirmed.extend(outcome.unconfirmed)
    result.failed.extend({s.ALERT_ID: fid, "reason": why} for fid, why in outcome.failed)
    if outcome.note:
        result.notes.append(outcome.note)


def export(
    lake: LocalLake,
    day: dt.date,
    sink: Sink,
    *,
    version: str | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ExportResult:
    """Export the day's unsuppressed alerts to ``sink``, each alert at most once; to the OCSF
    sinks also the day's incidents, each version of each at most once, after their alerts."""
    alerts = read_alerts(lake, day)
    items = prepare(alerts, _day_events(lake, day), version)
    result = ExportResult(sink.name, sink.destination, day.isoformat(), alerts=alerts.height,
                          suppressed=alerts.height - len(items))  # fmt: skip
    if sink.takes_incidents:
        incident_items = prepare_incidents(read_incidents(lake, day), items, version)
        result.incidents = len(incident_items)
        items = [*items, *incident_items]
    return deliver(items, sink, Ledger(lake, sink.name), day, result, clock)
