"""The compiled CloudTrail scan: a document's bytes → Arrow columns, no Python object per event.

:func:`scan_document` runs the numba kernel of :mod:`analytics.ingest.scan._kernel` over a zero-copy
view of one decompressed ``{"Records": [...]}`` document. It either accepts the whole document
(every record's kept values located and the whole text validated as strict UTF-8 JSON) or names
why not — then the document goes to the reference decoder (msgspec,
:mod:`analytics.ingest.cloudtrail`) as a whole, never a record of it. :func:`to_columns` then
gathers a batch of accepted documents into the raw input columns
:func:`analytics.ingest.identity.normalise` takes, equal to those the reference path builds for the
same documents.

Whether it is used at all is decided in :mod:`analytics.ingest.cloudtrail` (``KEYTRAIL_SCANNER``),
so that numba is imported only by processes that scan. Compiled code is cached on disk (see
:mod:`analytics.ingest.scan.cache`): the first call in a fresh install compiles for about 15 s on
two cores; every later process loads it in about half a second.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from analytics.ingest.scan.cache import configure_cache_dir

configure_cache_dir()

from analytics.ingest.scan import _kernel as k  # noqa: E402  (after the cache folder is chosen)

TEXT_COLUMNS = (
    "eventID", "eventTime", "eventVersion", "eventSource", "eventName", "eventType",
    "eventCategory", "awsRegion", "recipientAccountId", "sourceIPAddress", "userAgent",
    "errorCode", "errorMessage", "sharedEventID", "requestID", "vpcEndpointId",
    "requestParameters", "responseElements", "additionalEventData", "serviceEventDetails",
    "uiType", "uiPrincipalId", "uiArn", "uiAccountId", "uiUserName", "uiInvokedBy",
    "uiIdentityProvider", "uiIssuerArn", "uiOnBehalfOfUserId", "resourceKeyArn",
    "requestKeyId", "encryptionContext",
)  # fmt: skip
"""The text input columns, in the kernel's slot order (read-only and management event aside)."""
BOOL_COLUMNS = ("readOnly", "managementEvent")
_TEXT_SLOTS = np.array([*range(k.S_READ_ONLY), *range(k.S_UI_FIRST, k.SLOTS)], dtype=np.int64)
assert len(_TEXT_SLOTS) == len(TEXT_COLUMNS)

REASONS = {
    k.INVALID_UTF8: "invalid UTF-8",
    k.SYNTAX: "invalid JSON",
    k.SHAPE: "not a Records array of objects",
    k.TYPE: "a kept field of an unexpected type",
    k.DUPLICATE: "a kept key given twice",
    k.DEPTH: f"nested deeper than {k.MAX_DEPTH}",
    k.ESCAPED_KEY: "a key spelled with escapes",
    k.SURROGATE: "a lone UTF-16 surrogate escape",
    k.TRAILING: "bytes after the document",
    k.CAPACITY: "records too small and many, or an escaped resource ARN too long",
}
"""Why a document went to the reference decoder, by the kernel's reason code."""

_ROWS_PER_BYTE = 100
"""Table rows allocated per document byte: a CloudTrail record is never near 100 bytes."""
_SMALL_DOCUMENT = 256 * 1024
"""Below this size a document whose records overflow the table is scanned once more with room
for the smallest possible records (3 bytes each)."""


@dataclass
class Statistics:
    """What the scanner did in this process: documents taken, and those sent to the reference
    decoder by reason."""

    scanned: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"scanned": self.scanned, "fallbacks": dict(self.fallbacks)}


STATISTICS = Statistics()
_LOCK = threading.Lock()


@dataclass
class Scanned:
    """One document the scanner accepted: its view and the span table of its records."""

    view: np.ndarray
    kinds: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    sizes: np.ndarray
    """Bytes each text column needs for this document (escaped spans: an upper bound)."""

    @property
    def rows(self) -> int:
        return int(self.kinds.shape[0])


def _tables(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.empty((rows, k.SLOTS), dtype=np.int8),
        np.empty((rows, k.SLOTS), dtype=np.int32),
        np.empty((rows, k.SLOTS), dtype=np.int32),
    )


_ESCAPED_TEXT_BYTES = 4096
"""The longest escaped resource ARN the scanner unescapes to look at (longer: reference path)."""
_WORK = threading.local()


def _work_space() -> tuple[np.ndarray, np.ndarray]:
    """This thread's scratch span table and text buffer (kernels never allocate)."""
    space: tuple[np.ndarray, np.ndarray] | None = getattr(_WORK, "space", None)
    if space is None:
        space = (np.zeros((3, 2), dtype=np.int64), np.zeros(_ESCAPED_TEXT_BYTES, dtype=np.uint8))
        _WORK.space = space
    return space


def scan_document(doc: bytes) -> Scanned | str:
    """Scan one document: its span table, or the reason it must go to the reference decoder."""
    scanned = _scanned(doc)
    if isinstance(scanned, str):
        return _fallback(scanned)
    with _LOCK:
        STATISTICS.scanned += 1
    return scanned


def _scanned(doc: bytes) -> Scanned | str:
    if len(doc) >= 2**31 - 1:
        return "document larger than 2 GiB"
    view = np.frombuffer(doc, dtype=np.uint8)
    scratch, text = _work_space()
    kinds, starts, ends = _tables(len(doc) // _ROWS_PER_BYTE + 64)
    sizes = np.zeros(k.SLOTS, dtype=np.int64)
    code, rows, _ = k.scan(view, kinds, starts, ends, sizes, scratch, text)
    if code == k.CAPACITY and rows == kinds.shape[0] and len(doc) <= _SMALL_DOCUMENT:
        kinds, starts, ends = _tables(len(doc) // 3 + 2)
        sizes[:] = 0
        code, rows, _ = k.scan(view, kinds, starts, ends, sizes, scratch, text)
    if code != k.OK:
        return REASONS.get(code, f"reason {code}")
    kinds, starts, ends = kinds[:rows].copy(), starts[:rows].copy(), ends[:rows].copy()
    return Scanned(view, kinds, starts, ends, sizes[_TEXT_SLOTS])


LOAD_DOCUMENT = b'{"Records": [{"eventID": "e", "eventTime": "2026-11-02T10:00:00Z"}]}'


def load() -> None:
    """Load the compiled kernels now (from numba's cache, or compiled if the cache has none) by
    scanning and gathering one small document, without counting it in :data:`STATISTICS`.

    Loading costs about half a second in every process: an ingest starts it on a thread of its
    own while it lists the source (:func:`analytics.ingest.cloudtrail.load_scanner_early`)."""
    with _scipy_hidden():
        scanned = _scanned(LOAD_DOCUMENT)
        if isinstance(scanned, str):  # the kernel itself refused it: a bug, never a wrong row
            raise RuntimeError(f"the scanner refused its own load document ({scanned})")
        to_columns([scanned])


@contextlib.contextmanager
def _scipy_hidden() -> Iterator[None]:
    """Let numba set up its targets without importing SciPy's linear algebra, when nothing has
    imported it yet.

    On the first compile or cache load numba imports its NumPy support, which probes for a BLAS
    by importing ``scipy.linalg``: a quarter of a second of interpreter work at the start of
    every ingest, for linear algebra no kernel here does. While hidden, the probe finds no BLAS
    and numba leaves BLAS-backed functions out of later compiles in this process (keytrail has
    none); ``scipy.linalg`` imports as usual as soon as the load is over (the detectors need it).
    """
    if _LINALG in sys.modules:
        yield
        return
    sys.modules[_LINALG] = None  # type: ignore[assignment]  # its import now raises ImportError
    try:
        yield
    finally:
        if sys.modules.get(_LINALG, False) is None:
            del sys.modules[_LINALG]


_LINALG = "scipy.linalg"


def _fallback(reason: str) -> str:
    with _LOCK:
        STATISTICS.fallbacks[reason] += 1
    return reason


def to_columns(scans: list[Scanned]) -> dict[str, pa.Array]:
    """The raw input columns of :func:`analytics.ingest.identity.normalise` for a batch of scanned
    documents, in order: text as ``large_string``, the two flags as ``bool``."""
    total = sum(scan.rows for scan in scans)
    sizes = np.zeros(len(TEXT_COLUMNS), dtype=np.int64)
    for scan in scans:
        sizes += scan.sizes
    bases = np.zeros(len(TEXT_COLUMNS) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bases[1:])
    data = np.empty(int(bases[-1]), dtype=np.uint8)
    offsets = np.zeros((len(TEXT_COLUMNS), total + 1), dtype=np.int64)
    validity = np.zeros((len(TEXT_COLUMNS) + 4, (total + 7) // 8), dtype=np.uint8)
    cursors = bases[:-1].copy()
    first = 0
    for scan in scans:
        fits = k.gather(scan.view, scan.kinds, scan.starts, scan.ends, scan.rows, first,
                        _TEXT_SLOTS, offsets, data, bases, cursors, validity)  # fmt: skip
        if not fits:  # the kernel refused a span: a bug, never a wrong row
            raise ValueError("scanned spans do not fit the document")
        first += scan.rows
    columns: dict[str, pa.Array] = {}
    for c, name in enumerate(TEXT_COLUMNS):
        columns[name] = pa.Array.from_buffers(
            pa.large_string(), total,
            [pa.py_buffer(validity[c]), pa.py_buffer(offsets[c]),
             pa.py_buffer(data[bases[c] : bases[c + 1]])],
        )  # fmt: skip
    flags = len(TEXT_COLUMNS)
    for b, name in enumerate(BOOL_COLUMNS):
        columns[name] = pa.Array.from_buffers(
            pa.bool_(), total,
            [pa.py_buffer(validity[flags + 2 * b]), pa.py_buffer(validity[flags + 2 * b + 1])],
        )  # fmt: skip
    return columns
