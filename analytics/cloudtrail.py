"""Bytes of a CloudTrail object → an Arrow table in the event schema.

Decoding uses typed msgspec structs that name only the fields keytrail keeps, so the rest of a
record is skipped without allocating Python objects. JSON-valued fields (requestParameters,
responseElements, …) are captured as raw JSON bytes and handed to Arrow in one buffer per column,
never as Python strings. The per-record Python work is a single pass that copies the scalar
struct attributes into columns; every normalisation rule (actor, key ARN, source IP versus
service name, dates) then runs vectorised in :mod:`analytics.identity`.

A record that cannot be decoded on its own, or that lacks ``eventID`` or ``eventTime``, is set
aside as a :class:`BadRecord` and the rest of its object is kept.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeAlias

import msgspec
import numpy as np
import pyarrow as pa

from analytics import identity
from analytics import schema as s
from analytics.decompress import DEFAULT_MAX_DECOMPRESSED, RejectedObject, to_json_bytes

_NO_JSON = msgspec.Raw(b"")


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
    """One record refused on its own; ``raw`` is its JSON text (possibly truncated)."""

    index: int
    reason: str
    raw: str


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

    def positions(self) -> list[int]:
        """The index in the document of each decoded record (bad ones are skipped)."""
        if not self.bad_records:
            return list(range(len(self.records)))
        refused = {b.index for b in self.bad_records}
        total = len(self.records) + len(refused)
        return [i for i in range(total) if i not in refused]


def decode_object(
    data: bytes, source_object: str, max_bytes: int = DEFAULT_MAX_DECOMPRESSED
) -> DecodedObject:
    """Decompress and decode one object; raises :class:`RejectedObject` if it is unusable."""
    return decode_document(to_json_bytes(data, max_bytes), source_object)


def decode_document(doc: bytes, source_object: str) -> DecodedObject:
    """Decode a ``{"Records": [...]}`` document into typed records."""
    try:
        return DecodedObject(source_object, doc, _DOCUMENT.decode(doc).Records)
    except msgspec.DecodeError:
        pass
    notes = []
    if not _is_utf8(doc):
        doc = doc.decode("utf-8", errors="replace").encode("utf-8")
        notes.append(INVALID_UTF8_NOTE)
        try:
            return DecodedObject(source_object, doc, _DOCUMENT.decode(doc).Records, notes=notes)
        except msgspec.DecodeError:
            pass
    records, bad = _decode_record_by_record(doc)
    return DecodedObject(source_object, doc, records, bad, notes)


INVALID_UTF8_NOTE = "invalid UTF-8 replaced with U+FFFD"


def normalise_objects(objects: list[DecodedObject]) -> pa.Table:
    """Normalise a batch of decoded objects at once (the fixed cost is paid once per batch).

    Records lacking ``eventID`` or a parseable ``eventTime`` are moved to their object's
    ``bad_records``. Invalid UTF-8 hidden in raw JSON fields is repaired object by object.
    """
    if not objects:
        return identity.conform(s.EVENT_SCHEMA.empty_table())
    try:  # one pass over every record of the batch: per-object overhead is paid once
        columns = _columns([r for obj in objects for r in obj.records])
    except UnicodeDecodeError:  # rare: find the object with invalid UTF-8 and repair it
        for index, obj in enumerate(objects):
            try:
                _columns(obj.records)
            except UnicodeDecodeError:
                objects[index] = _repaired(obj)
        columns = _columns([r for obj in objects for r in obj.records])
    sources: list[object] = []
    for obj in objects:
        sources.extend([obj.source_object] * len(obj.records))
    columns["sourceObject"] = sources
    try:
        table = identity.normalise(columns)
    except pa.ArrowInvalid:
        if len(objects) == 1 and _is_utf8(objects[0].doc):
            raise
        tables = [normalise_objects([_repaired(obj)]) for obj in objects]
        return pa.concat_tables(tables)
    missing = identity.missing_required(table)
    if missing is None:
        return identity.conform(table)
    _set_aside(objects, columns, missing.arg_true().to_list())
    return identity.conform(table.filter(pa.array((~missing).to_list())))


def _repaired(obj: DecodedObject) -> DecodedObject:
    if _is_utf8(obj.doc):
        return obj
    fixed = decode_document(obj.doc.decode("utf-8", errors="replace").encode("utf-8"),
                            obj.source_object)  # fmt: skip
    fixed.notes.insert(0, INVALID_UTF8_NOTE)
    return fixed


def _set_aside(objects: list[DecodedObject], columns: dict[str, Column], rows: list[int]) -> None:
    """Record each row lacking required fields as a bad record of the object it came from."""
    offsets = []
    total = 0
    for obj in objects:
        offsets.append(total)
        total += len(obj.records)
    positions: dict[int, list[int]] = {}
    for row in rows:
        which = bisect.bisect_right(offsets, row) - 1
        obj = objects[which]
        if which not in positions:  # before any of this object's records is set aside
            positions[which] = obj.positions()
        position = positions[which][row - offsets[which]]
        raw = _RAW_DOCUMENT.decode(obj.doc).Records[position]
        obj.bad_records.append(BadRecord(position, _missing_reason(columns, row), _raw_text(raw)))
    for obj in objects:
        obj.bad_records.sort(key=lambda b: b.index)


def parse_object(
    data: bytes, source_object: str, max_bytes: int = DEFAULT_MAX_DECOMPRESSED
) -> ParsedObject:
    """Parse the bytes of one CloudTrail log object (gzip or plain JSON).

    Raises :class:`RejectedObject` with a one-line reason when the object as a whole is unusable.
    """
    return parse_document(to_json_bytes(data, max_bytes), source_object)


def parse_document(doc: bytes, source_object: str) -> ParsedObject:
    """Parse a ``{"Records": [...]}`` JSON document into the event schema."""
    decoded = decode_document(doc, source_object)
    table = normalise_objects([decoded])
    return ParsedObject(table, decoded.bad_records, decoded.notes)


def _is_utf8(doc: bytes) -> bool:
    try:
        doc.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _missing_reason(columns: dict[str, Column], row: int) -> str:
    if not columns["eventID"][row]:
        return "record has no eventID"
    event_time = columns["eventTime"][row]
    if event_time is None:
        return "record has no eventTime"
    return f"unparseable eventTime {str(event_time)[:40]!r}"


def _raw_text(raw: msgspec.Raw | bytes) -> str:
    return bytes(raw)[:_MAX_RAW_KEPT].decode("utf-8", errors="replace")


def _decode_record_by_record(doc: bytes) -> tuple[list[_Record], list[BadRecord]]:
    """Slow path, taken only when the whole-document decode failed: isolate bad records."""
    try:
        raw_records = _RAW_DOCUMENT.decode(doc).Records
    except msgspec.ValidationError as exc:
        raise RejectedObject(_describe_shape_error(doc, exc)) from None
    except msgspec.DecodeError as exc:
        raise RejectedObject(f"invalid JSON ({exc})") from None
    records: list[_Record] = []
    bad: list[BadRecord] = []
    for index, raw in enumerate(raw_records):
        try:
            records.append(_RECORD.decode(raw))
        except msgspec.DecodeError as exc:
            reason = f"record does not fit the CloudTrail shape ({exc})"
            bad.append(BadRecord(index, reason, _raw_text(raw)))
    return records, bad


def _describe_shape_error(doc: bytes, exc: msgspec.ValidationError) -> str:
    try:
        top = msgspec.json.decode(doc)
    except msgspec.DecodeError as decode_error:
        return f"invalid JSON ({decode_error})"
    if isinstance(top, dict):
        if "Records" not in top:
            keys = ", ".join(sorted(str(k) for k in top)[:5]) or "none"
            return f"JSON has no Records array (top-level keys: {keys})"
        return f"Records is not an array of objects ({exc})"
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
        except msgspec.DecodeError:
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
    except msgspec.DecodeError:  # e.g. a keyId that is not a string: keep the record, not these
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
