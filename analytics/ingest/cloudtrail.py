"""Bytes of a CloudTrail object → an Arrow table in the event schema.

Decoding uses typed msgspec structs that name only the fields keytrail keeps, so the rest of a
record is skipped without allocating Python objects. JSON-valued fields (requestParameters,
responseElements, …) are captured as raw JSON bytes and handed to Arrow in one buffer per column,
never as Python strings. The per-record Python work is a single pass that copies the scalar
struct attributes into columns; every normalisation rule (actor, key ARN, source IP versus
service name, dates) then runs vectorised in :mod:`analytics.ingest.identity`.

A record that cannot be decoded on its own, that lacks ``eventID`` or ``eventTime``, or whose
``eventTime`` is implausible (see :data:`EARLIEST_EVENT_TIME` and :data:`LATEST_AFTER_DELIVERY`)
is set aside as a :class:`BadRecord` and the rest of its object is kept. Every string of a record
is attacker-controlled, so no decoder failure of any kind may escape as anything but a
:class:`RejectedObject` (whole object) or a :class:`BadRecord` (one record): see
:func:`failure_reason` and :func:`normalise_each`.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, TypeAlias

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from analytics.ingest import identity
from analytics.ingest.decompress import DEFAULT_MAX_DECOMPRESSED, RejectedObject, to_json_bytes
from analytics.lake import schema as s

if TYPE_CHECKING:
    from analytics.ingest.scan import Scanned

_NO_JSON = msgspec.Raw(b"")

EARLIEST_EVENT_TIME = dt.datetime(2013, 11, 1, tzinfo=dt.UTC)
"""No genuine CloudTrail record is older than the service (launched November 2013)."""
LATEST_AFTER_DELIVERY = dt.timedelta(hours=24)
"""How far an ``eventTime`` may lie after its object was delivered (S3 LastModified, or the local
file's mtime; the clock when neither is known). CloudTrail writes an event minutes after it
happens, so a later one is a forged or corrupt time; within this bound it is kept and noted."""
_MAX_REASON = 300


class _SessionIssuer(msgspec.Struct, gc=False):
    arn: str | None = None


class _SessionContext(msgspec.Struct, gc=False):
    sessionIssuer: _SessionIssuer | None = None


class _OnBehalfOf(msgspec.Struct, gc=False):
    userId: str | None = None


class _UserIdentity(msgspec.Struct, gc=False):
    type: str | None = None
    principalId: str | None = None
    arn: str | None = None
    accountId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    identityProvider: str | None = None
    sessionContext: _SessionContext | None = None
    onBehalfOf: _OnBehalfOf | None = None


class _Resource(msgspec.Struct, gc=False):
    ARN: str | None = None
    arn: str | None = None  # lower-case in copies re-exported by some SIEMs


class _Record(msgspec.Struct, gc=False):
    eventID: str | None = None
    eventTime: str | None = None
    eventVersion: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    eventType: str | None = None
    eventCategory: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    userIdentity: _UserIdentity | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    readOnly: bool | None = None
    managementEvent: bool | None = None
    resources: list[_Resource] | None = None
    requestParameters: msgspec.Raw = _NO_JSON
    responseElements: msgspec.Raw = _NO_JSON
    additionalEventData: msgspec.Raw = _NO_JSON
    serviceEventDetails: msgspec.Raw = _NO_JSON
    sharedEventID: str | None = None
    requestID: str | None = None
    vpcEndpointId: str | None = None


class _Document(msgspec.Struct, gc=False):
    Records: list[_Record]


class _RawDocument(msgspec.Struct, gc=False):
    Records: list[msgspec.Raw]


# strict=False lets "true"/"false" strings stand in for booleans, as some old records have them.
_DOCUMENT = msgspec.json.Decoder(_Document, strict=False)
_RAW_DOCUMENT = msgspec.json.Decoder(_RawDocument)
_RECORD = msgspec.json.Decoder(_Record, strict=False)
DOCUMENT_DECODER = _DOCUMENT
"""The typed decoder of a whole ``{"Records": [...]}`` document (the benchmark's floor uses it)."""


@dataclass(frozen=True)
class BadRecord:
    """One record refused on its own; ``raw`` is its JSON text (possibly truncated).

    ``index`` is its position in ``Records``; None for a record refused after normalisation
    (an eventID clash), whose ``raw`` is then the event as it would have been stored."""

    index: int | None
    reason: str
    raw: str
    event_date: dt.date | None = None
    """The day the record's event falls on, when known (an eventID clash): the day's report
    counts what was quarantined for it."""


@dataclass
class ParsedObject:
    """What one CloudTrail object yielded."""

    events: pa.Table
    bad_records: list[BadRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_MAX_RAW_KEPT = 64 * 1024


@dataclass
class DecodedObject:
    """One object decoded into typed records, before normalisation (which runs per batch)."""

    source_object: str
    doc: bytes
    records: list[_Record]
    bad_records: list[BadRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    delivered: dt.datetime | None = None
    """When the object was delivered, which bounds its plausible event times (None: now)."""
    scanned: Scanned | None = None
    """The compiled scanner's span table, when it took the document (``records`` is then
    empty): see :mod:`analytics.ingest.scan`."""
    scan_fallback: str | None = None
    """Why the scanner left the document to the reference decoder (None: it took it, or it
    is off)."""

    @property
    def count(self) -> int:
        """How many records were decoded (bad ones are not counted)."""
        return self.scanned.rows if self.scanned is not None else len(self.records)

    def positions(self) -> list[int]:
        """The index in the document of each decoded record (bad ones are skipped)."""
        if not self.bad_records:
            return list(range(self.count))
        refused = {b.index for b in self.bad_records if b.index is not None}
        total = self.count + len(refused)
        return [i for i in range(total) if i not in refused]


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for an unexpected decoder failure (type and first words of the message).

    The message may quote attacker-controlled input, so it is cut to one short line.
    """
    message = " ".join(str(exc).split())
    if isinstance(exc, RecursionError):
        return f"nested too deeply to decode ({message})"[:_MAX_REASON]
    return f"cannot decode ({type(exc).__name__}: {message})"[:_MAX_REASON]


def decode_object(
    data: bytes,
    source_object: str,
    max_bytes: int = DEFAULT_MAX_DECOMPRESSED,
    delivered: dt.datetime | None = None,
) -> DecodedObject:
    """Decompress and decode one object; raises :class:`RejectedObject` if it is unusable."""
    decoded = decode_document(to_json_bytes(data, max_bytes), source_object)
    decoded.delivered = delivered
    return decoded


def decode_document(doc: bytes, source_object: str) -> DecodedObject:
    """Decode a ``{"Records": [...]}`` document: by the compiled scanner when it is on and
    accepts the whole document, else into typed records (the reference path).

    Raises :class:`RejectedObject` and nothing else when the document as a whole is unusable.
    """
    scanned = _scan(doc)
    if scanned is not None and not isinstance(scanned, str):
        return DecodedObject(source_object, doc, [], scanned=scanned)
    decoded = decode_reference(doc, source_object)
    decoded.scan_fallback = scanned
    return decoded


def decode_reference(doc: bytes, source_object: str) -> DecodedObject:
    """Decode a document with msgspec into typed records: the reference path, and the one
    every document the scanner does not accept takes."""
    # On any failure (DecodeError, RecursionError, …) the record-by-record path says which.
    with contextlib.suppress(Exception):
        return DecodedObject(source_object, doc, _DOCUMENT.decode(doc).Records)
    notes = []
    if not _is_utf8(doc):
        doc = doc.decode("utf-8", errors="replace").encode("utf-8")
        notes.append(INVALID_UTF8_NOTE)
        with contextlib.suppress(Exception):
            return DecodedObject(source_object, doc, _DOCUMENT.decode(doc).Records, notes=notes)
    records, bad = _decode_record_by_record(doc)
    return DecodedObject(source_object, doc, records, bad, notes)


INVALID_UTF8_NOTE = "invalid UTF-8 replaced with U+FFFD"

SCANNER_ENV = "KEYTRAIL_SCANNER"
"""``reference`` turns the compiled scanner off; ``compiled`` (the default) leaves it on."""


def _scan(doc: bytes) -> Scanned | str | None:
    """The scanner's table of ``doc``; or why it does not take the document (also counted in
    :data:`analytics.ingest.scan.STATISTICS`); or None if the scanner is off or unavailable."""
    if not scanner_enabled():
        return None
    from analytics.ingest import scan

    return scan.scan_document(doc)


def _reference_chosen() -> bool:
    """Whether ``KEYTRAIL_SCANNER`` turns the compiled scanner off."""
    return os.environ.get(SCANNER_ENV, "compiled").strip().lower() == "reference"


def scanner_enabled() -> bool:
    """Whether documents go through the compiled scanner: ``KEYTRAIL_SCANNER`` is not
    ``reference``, and numba loads (or compiles) the kernel here."""
    global _SCANNER_FAILURE
    if _SCANNER_FAILURE is not None or _reference_chosen():
        return False
    try:
        from analytics.ingest import scan  # noqa: F401  (imports numba and the kernel)
    except Exception as exc:  # no numba, no cache folder: the reference path still works
        _SCANNER_FAILURE = failure_reason(exc)
        return False
    return True


def load_scanner_early() -> threading.Thread | None:
    """Start loading the compiled scanner on a thread of its own (numba's import and its cached
    code: about half a second), so that it overlaps what a run does before its first document
    instead of delaying the first read. Returns the thread, or None if the scanner is off."""
    if _reference_chosen():
        return None

    def load() -> None:
        global _SCANNER_FAILURE
        if not scanner_enabled():  # numba did not load: the reference decoder reads everything
            return
        from analytics.ingest import scan

        try:
            scan.load()
        except Exception as exc:  # a kernel that fails on its own small document is not used
            _SCANNER_FAILURE = failure_reason(exc)

    thread = threading.Thread(target=load, name="keytrail-scanner-load", daemon=True)
    thread.start()
    return thread


_SCANNER_FAILURE: str | None = None
"""Why the scanner could not be loaded in this process (None: it could, or was not tried)."""


def normalise_objects(objects: list[DecodedObject]) -> pa.Table:
    """Normalise a batch of decoded objects at once (the fixed cost is paid once per batch).

    Records lacking ``eventID`` or a parseable ``eventTime``, or timed implausibly, are moved to
    their object's ``bad_records``. Invalid UTF-8 hidden in raw JSON fields is repaired object by
    object. May raise on input nobody foresaw: :func:`normalise_each` is the safe entry point.
    """
    if not objects:
        return identity.conform(s.EVENT_SCHEMA.empty_table())
    try:  # one pass over every record of the batch: per-object overhead is paid once
        columns = _batch_columns(objects)
    except UnicodeDecodeError:  # rare: find the object with invalid UTF-8 and repair it
        for index, obj in enumerate(objects):
            try:
                _columns(obj.records)
            except UnicodeDecodeError:
                objects[index] = _repaired(obj)
        columns = _batch_columns(objects)
    # Each object's key once, repeated by Arrow (no Python string per event).
    counts = np.fromiter((obj.count for obj in objects), dtype=np.int64, count=len(objects))
    keys = pa.array([obj.source_object for obj in objects], pa.string())
    columns["sourceObject"] = keys.take(np.repeat(np.arange(len(objects)), counts))
    try:
        table = identity.normalise(columns)
    except pa.ArrowInvalid:
        if len(objects) == 1 and _is_utf8(objects[0].doc):
            raise
        objects[:] = [_repaired(obj) for obj in objects]  # the caller sees the repaired ones
        return pa.concat_tables([normalise_objects([obj]) for obj in objects])
    refused = _refused_rows(objects, columns, table)
    if refused is None:
        return identity.conform(table)
    rows, reasons = refused
    _set_aside(objects, rows, reasons)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[rows] = False
    return identity.conform(table.filter(pa.array(keep)))


def normalise_each(objects: list[DecodedObject]) -> tuple[pa.Table, dict[str, str]]:
    """:func:`normalise_objects`, except that an object whose normalisation raises anything is
    refused alone: returns the events of the others and a reason per refused ``source_object``.

    The batch is tried first (the common, fast case); only if it fails is each object retried
    on its own, so one hostile object costs its neighbours a second pass, never their events.
    """
    before = [(obj, list(obj.bad_records), list(obj.notes)) for obj in objects]
    try:
        return normalise_objects(objects), {}
    except Exception:  # undo what the failed attempt recorded, then retry object by object
        for index, (obj, bad_records, notes) in enumerate(before):
            obj.bad_records, obj.notes = bad_records, notes
            objects[index] = obj
    tables: list[pa.Table] = []
    refused: dict[str, str] = {}
    for index, obj in enumerate(objects):
        single = [obj]
        try:
            tables.append(normalise_objects(single))
        except Exception as exc:
            refused[obj.source_object] = failure_reason(exc)
        objects[index] = single[0]
    if not tables:
        return identity.conform(s.EVENT_SCHEMA.empty_table()), refused
    return pa.concat_tables(tables), refused


def _refused_rows(
    objects: list[DecodedObject], columns: dict[str, Column], table: pa.Table
) -> tuple[list[int], list[str]] | None:
    """Rows to set aside, with the reason of each: required fields missing, or a time before
    CloudTrail existed or past :data:`LATEST_AFTER_DELIVERY` after delivery. Records timed after
    delivery but within that bound are kept and noted on their object."""
    counts = np.fromiter((o.count for o in objects), dtype=np.int64, count=len(objects))
    now = dt.datetime.now(dt.UTC)
    delivered = [min(o.delivered, now) if o.delivered else now for o in objects]
    micros = np.array([_micros(d) for d in delivered], dtype=np.int64)
    frame = pl.from_arrow(table.select([s.EVENT_ID, s.EVENT_TIME]))
    assert isinstance(frame, pl.DataFrame)
    times = frame.get_column(s.EVENT_TIME).dt.epoch("us")
    delivery = pl.Series(np.repeat(micros, counts))
    missing = identity.missing_required(table)
    early = times < _micros(EARLIEST_EVENT_TIME)
    late = times > delivery + int(LATEST_AFTER_DELIVERY / dt.timedelta(microseconds=1))
    after = (times > delivery).fill_null(False) & ~late.fill_null(False)
    if after.any():
        _note_after_delivery(objects, counts, after)
    bad = (early | late).fill_null(False)
    if missing is not None:
        bad = bad | missing
    if not bad.any():
        return None
    rows = bad.arg_true().to_list()
    reasons = []
    for row in rows:
        if missing is not None and missing[row]:
            reasons.append(_missing_reason(columns, row))
        else:
            reasons.append(_implausible_reason(columns, row, bool(early[row]), delivered, counts))
    return rows, reasons


def _micros(when: dt.datetime) -> int:
    return int((when - _EPOCH) / dt.timedelta(microseconds=1))


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _note_after_delivery(
    objects: list[DecodedObject], counts: np.ndarray, after: pl.Series
) -> None:
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flags = after.to_numpy()
    for index, obj in enumerate(objects):
        late = int(flags[offsets[index] : offsets[index + 1]].sum())
        if late:
            obj.notes.append(f"{late} record(s) timed after the object was delivered")


def _implausible_reason(
    columns: dict[str, Column],
    row: int,
    early: bool,
    delivered: list[dt.datetime],
    counts: np.ndarray,
) -> str:
    raw = repr(str(_value(columns["eventTime"], row))[:40])
    if early:
        return (
            f"implausible eventTime {raw}: before CloudTrail existed "
            f"({EARLIEST_EVENT_TIME:%Y-%m-%d})"
        )
    which = int(np.searchsorted(np.cumsum(counts), row, side="right"))
    hours = int(LATEST_AFTER_DELIVERY / dt.timedelta(hours=1))
    return (
        f"implausible eventTime {raw}: more than {hours} h after the object was delivered "
        f"({delivered[which]:%Y-%m-%dT%H:%M:%SZ})"
    )


def _repaired(obj: DecodedObject) -> DecodedObject:
    if _is_utf8(obj.doc):
        return obj
    fixed = decode_document(obj.doc.decode("utf-8", errors="replace").encode("utf-8"),
                            obj.source_object)  # fmt: skip
    fixed.notes.insert(0, INVALID_UTF8_NOTE)
    fixed.delivered = obj.delivered
    return fixed


def _set_aside(objects: list[DecodedObject], rows: list[int], reasons: list[str]) -> None:
    """Record each refused row as a bad record of the object it came from."""
    offsets = []
    total = 0
    for obj in objects:
        offsets.append(total)
        total += obj.count
    positions: dict[int, list[int]] = {}
    for row, reason in zip(rows, reasons, strict=True):
        which = bisect.bisect_right(offsets, row) - 1
        obj = objects[which]
        if which not in positions:  # before any of this object's records is set aside
            positions[which] = obj.positions()
        position = positions[which][row - offsets[which]]
        raw = _RAW_DOCUMENT.decode(obj.doc).Records[position]
        obj.bad_records.append(BadRecord(position, reason, _raw_text(raw)))
    for obj in objects:
        obj.bad_records.sort(key=lambda b: -1 if b.index is None else b.index)


def parse_object(
    data: bytes, source_object: str, max_bytes: int = DEFAULT_MAX_DECOMPRESSED
) -> ParsedObject:
    """Parse the bytes of one CloudTrail log object (gzip or plain JSON).

    Raises :class:`RejectedObject` with a one-line reason when the object as a whole is unusable.
    """
    return parse_document(to_json_bytes(data, max_bytes), source_object)


def parse_document(doc: bytes, source_object: str) -> ParsedObject:
    """Parse a ``{"Records": [...]}`` JSON document into the event schema."""
    objects = [decode_document(doc, source_object)]
    table, refused = normalise_each(objects)
    if refused:
        raise RejectedObject(refused[source_object])
    return ParsedObject(table, objects[0].bad_records, objects[0].notes)


def _is_utf8(doc: bytes) -> bool:
    try:
        doc.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _value(column: Column, row: int) -> object:
    """A Python value of a raw input column (a list, or Arrow from the scanner)."""
    value = column[row]
    return value.as_py() if isinstance(value, pa.Scalar) else value


def _missing_reason(columns: dict[str, Column], row: int) -> str:
    if not _value(columns["eventID"], row):
        return "record has no eventID"
    event_time = _value(columns["eventTime"], row)
    if event_time is None:
        return "record has no eventTime"
    return f"unparseable eventTime {str(event_time)[:40]!r}"


def _raw_text(raw: msgspec.Raw | bytes) -> str:
    return bytes(raw)[:_MAX_RAW_KEPT].decode("utf-8", errors="replace")


# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a \uDC00-\uDFFF escape not
# preceded by a \uD800-\uDBFF one: not Unicode text, and msgspec refuses the whole document for
# it. Only escapes that start after an even run of backslashes count (``\\ud800`` is text).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)"
    rb"(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_SURROGATE_MARK = b"\\u0000keytrail:lone-surrogate\\u0000"
"""What a lone surrogate escape is replaced with, so the document splits into records and the
records that held one are found again and set aside (never kept with altered text)."""
LONE_SURROGATE_REASON = "a string holds a lone UTF-16 surrogate escape, which is not Unicode text"


def _decode_record_by_record(doc: bytes) -> tuple[list[_Record], list[BadRecord]]:
    """Slow path, taken only when the whole-document decode failed: isolate bad records.

    A lone surrogate escape would make the whole document undecodable; it is marked first, so
    only the records that hold one are refused and the good records beside them are kept."""
    marked, lone = _LONE_SURROGATE.subn(lambda m: m.group(1) + _SURROGATE_MARK, doc)
    try:
        raw_records = _RAW_DOCUMENT.decode(marked).Records
    except msgspec.ValidationError as exc:
        raise RejectedObject(_describe_shape_error(doc, exc)) from None
    except msgspec.DecodeError as exc:
        raise RejectedObject(_one_line(f"invalid JSON ({exc})")) from None
    except Exception as exc:  # RecursionError on deep nesting, or anything else msgspec raises
        raise RejectedObject(failure_reason(exc)) from None
    records: list[_Record] = []
    bad: list[BadRecord] = []
    for index, raw in enumerate(raw_records):
        if lone and _SURROGATE_MARK in bytes(raw):
            text = bytes(raw).replace(_SURROGATE_MARK, b"\\ufffd")
            bad.append(BadRecord(index, LONE_SURROGATE_REASON, _raw_text(text)))
            continue
        try:
            records.append(_RECORD.decode(raw))
        except msgspec.DecodeError as exc:
            reason = _one_line(f"record does not fit the CloudTrail shape ({exc})")
            bad.append(BadRecord(index, reason, _raw_text(raw)))
        except Exception as exc:
            bad.append(BadRecord(index, failure_reason(exc), _raw_text(raw)))
    return records, bad


def _one_line(reason: str) -> str:
    return " ".join(reason.split())[:_MAX_REASON]


def _describe_shape_error(doc: bytes, exc: msgspec.ValidationError) -> str:
    try:
        top = msgspec.json.decode(doc)
    except msgspec.DecodeError as decode_error:
        return _one_line(f"invalid JSON ({decode_error})")
    except Exception as other:
        return failure_reason(other)
    if isinstance(top, dict):
        if "Records" not in top:
            keys = ", ".join(sorted(str(k) for k in top)[:5]) or "none"
            return f"JSON has no Records array (top-level keys: {keys})"
        return _one_line(f"Records is not an array of objects ({exc})")
    return f"JSON top level is {type(top).__name__}, not an object with Records"


_JSON_FIELDS = ("requestParameters", "responseElements", "additionalEventData",
                "serviceEventDetails")  # fmt: skip
_VALUE_COLUMNS = (
    "eventID", "eventTime", "eventVersion", "eventSource", "eventName", "eventType",
    "eventCategory", "awsRegion", "recipientAccountId", "sourceIPAddress", "userAgent",
    "errorCode", "errorMessage", "readOnly", "managementEvent", "sharedEventID", "requestID",
    "vpcEndpointId", "resourceKeyArn", "uiType", "uiPrincipalId", "uiArn", "uiAccountId",
    "uiUserName", "uiInvokedBy", "uiIdentityProvider", "uiIssuerArn", "uiOnBehalfOfUserId",
)  # fmt: skip
_COLUMN_NAMES = (*_VALUE_COLUMNS, *_JSON_FIELDS, "requestKeyId", "encryptionContext")

Column: TypeAlias = Sequence[object] | pa.Array
"""A raw input column: Python values, or Arrow text for the JSON-valued fields."""


def _columns(records: list[_Record]) -> dict[str, Column]:
    """Copy struct attributes into columns: the per-record step of the ingest path.

    One comprehension builds a tuple of the scalar fields per record and ``zip`` transposes
    them in C (CPython's specialised attribute loads make this faster than ``attrgetter``).
    JSON-valued fields never become Python strings: their raw bytes are joined into one Arrow
    buffer and validated as UTF-8 there (invalid UTF-8 raises ``UnicodeDecodeError`` for the
    slow, repairing path); a literal ``null`` is nulled later, vectorised.
    """
    if not records:
        return {name: [] for name in _COLUMN_NAMES}
    empty = _EMPTY_IDENTITY
    rows = [
        (
            r.eventID, r.eventTime, r.eventVersion, r.eventSource, r.eventName, r.eventType,
            r.eventCategory, r.awsRegion, r.recipientAccountId, r.sourceIPAddress, r.userAgent,
            r.errorCode, r.errorMessage, r.readOnly, r.managementEvent, r.sharedEventID,
            r.requestID, r.vpcEndpointId,
            _resource_key_arn(r.resources) if r.resources else None,
            (u := r.userIdentity or empty).type, u.principalId, u.arn, u.accountId,
            u.userName, u.invokedBy, u.identityProvider,
            c.sessionIssuer.arn if (c := u.sessionContext) and c.sessionIssuer else None,
            u.onBehalfOf.userId if u.onBehalfOf else None,
        )
        for r in records
    ]  # fmt: skip
    columns: dict[str, Column] = dict(zip(_VALUE_COLUMNS, zip(*rows, strict=True), strict=True))
    for name in _JSON_FIELDS:
        columns[name] = _json_text(list(map(attrgetter(name), records)))
    columns["requestKeyId"], columns["encryptionContext"] = _kms_columns(
        records, columns["eventSource"]
    )
    return columns


def _batch_columns(objects: list[DecodedObject]) -> dict[str, Column]:
    """The raw input columns of a batch: scanned documents gathered by the compiled kernel,
    the others copied from their typed records; in object order either way."""
    if all(obj.scanned is None for obj in objects):
        return _columns([r for obj in objects for r in obj.records])
    from analytics.ingest import scan

    pieces: list[dict[str, Column]] = []
    start = 0
    for end in range(1, len(objects) + 1):  # runs of objects decoded the same way
        if end < len(objects) and (objects[end].scanned is None) == (
            objects[start].scanned is None
        ):
            continue
        run = objects[start:end]
        scans = [obj.scanned for obj in run if obj.scanned is not None]
        if scans:
            pieces.append(dict(scan.to_columns(scans)))
        else:
            pieces.append(_columns([r for obj in run for r in obj.records]))
        start = end
    if len(pieces) == 1:
        return pieces[0]
    return {name: _concat([piece[name] for piece in pieces], name) for name in _COLUMN_NAMES}


def _concat(pieces: list[Column], name: str) -> pa.Array:
    kind = pa.bool_() if name in ("readOnly", "managementEvent") else pa.large_string()
    arrays = [p if isinstance(p, pa.Array) else pa.array(p, type=kind) for p in pieces]
    return pa.concat_arrays([a.cast(kind) for a in arrays])


def _json_text(raws: Sequence[msgspec.Raw | bytes]) -> pa.Array:
    """Raw JSON values as one Arrow text array (an absent field is null), built without copies
    into Python strings: one join, one offsets array, one UTF-8 validation."""
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=len(raws))
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    present = lengths > 0
    validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    data = pa.py_buffer(b"".join(raws))
    binary = pa.Array.from_buffers(
        pa.large_binary(), len(raws), [validity, pa.py_buffer(offsets), data]
    )
    try:
        return binary.cast(pa.large_string())
    except pa.ArrowInvalid as exc:
        raise UnicodeDecodeError("utf-8", b"", 0, 1, f"JSON field: {exc}") from None


class _KmsParams(msgspec.Struct, gc=False):
    keyId: str | None = None
    encryptionContext: msgspec.Raw = _NO_JSON


_KMS = "kms.amazonaws.com"
_KMS_PARAMS = msgspec.json.Decoder(_KmsParams)
_KMS_PARAMS_LIST = msgspec.json.Decoder(list[_KmsParams | None])
_NO_KMS_PARAMS: tuple[str | None, bytes] = (None, b"")
_JSON_NULL = b"null"


def _kms_columns(records: list[_Record], sources: Column) -> tuple[list[str | None], pa.Array]:
    """``keyId`` and the encryption context (JSON text, objects only) of each KMS request.

    The request parameters of a batch's KMS events are decoded in one call; only if one of them
    does not fit (a ``keyId`` that is not a string, say) is the batch decoded record by record,
    so that one odd record keeps its event and loses only these two values.
    """
    key_ids: list[str | None] = [None] * len(records)
    contexts: list[msgspec.Raw | bytes] = [b""] * len(records)
    picked = [i for i, source in enumerate(sources) if source == _KMS]
    if picked:
        raws = [records[i].requestParameters for i in picked]
        try:
            batch = b"[" + b",".join([raw or _JSON_NULL for raw in raws]) + b"]"
            decoded = [(p.keyId, p.encryptionContext) if p else _NO_KMS_PARAMS
                       for p in _KMS_PARAMS_LIST.decode(batch)]  # fmt: skip
        except Exception:  # DecodeError, or anything else: sort it out record by record
            decoded = [_kms_params(raw) for raw in raws]
        for i, (key_id, context) in zip(picked, decoded, strict=True):
            key_ids[i] = key_id
            if bytes(memoryview(context)[:1]) == b"{":
                contexts[i] = context
    return key_ids, _json_text(contexts)


def _kms_params(raw: msgspec.Raw) -> tuple[str | None, msgspec.Raw | bytes]:
    """``keyId`` and the raw encryption context of one KMS request (the per-record fallback)."""
    view = bytes(memoryview(raw)[:4])
    if not view or view == _JSON_NULL:
        return _NO_KMS_PARAMS
    try:
        params = _KMS_PARAMS.decode(raw)
    except Exception:  # e.g. a keyId that is not a string: keep the record, not these values
        return _NO_KMS_PARAMS
    return params.keyId, params.encryptionContext


_EMPTY_IDENTITY = _UserIdentity()


def _resource_key_arn(resources: list[_Resource] | None) -> str | None:
    """The first KMS key ARN among ``resources`` (alias ARNs are listed there too)."""
    if not resources:
        return None
    for resource in resources:
        arn = resource.ARN or resource.arn
        if arn is not None and ":key/" in arn and arn.startswith("arn:"):
            return arn
    return None
