"""The compiled scanner: JSON bytes of one CloudTrail object → byte spans of the kept fields.

Two kernels, both over a read-only ``uint8`` view of the document:

* :func:`scan` walks the whole document once, validating all of it as strict JSON (numbers,
  literals, string escapes, nesting), and records for every record the span of each kept value
  in a ``(records, SLOTS)`` table: its kind (:data:`NULL`, :data:`PLAIN`, :data:`ESCAPED`,
  :data:`RAW`, :data:`TRUE`, :data:`FALSE`), start and end. Anything it does not recognise returns
  a reason code and the object goes to the reference decoder.
* :func:`gather` copies (and unescapes) the spans of a batch of objects into Arrow buffers:
  per text column an ``int64`` offsets array, a data buffer and a validity bitmap.

Every read of ``buf`` is guarded by an explicit bound (numba does not check indices), so a
truncated or hostile document ends in a reason code, never a read past its end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit, types
from numba.core import cgutils, config
from numba.extending import intrinsic, register_jitable

if sys.byteorder != "little":  # the string scan reads eight bytes as one little-endian word
    raise ImportError("the compiled scanner needs a little-endian machine")

_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "_nrt": False}
"""Compiled once and cached on disk; the GIL released; and no runtime reference counting: a
kernel never allocates (the caller passes every array, work space included), and counting
references to the document at each of the millions of helper calls cost two thirds of the
scan's time."""
_F = TypeVar("_F", bound=Callable[..., Any])


def _kernel(function: _F) -> _F:
    """Compile ``function`` with :data:`_OPTIONS` (mypy keeps its Python signature)."""
    return cast(_F, njit(**_OPTIONS)(function))


def _inlined(function: _F) -> _F:
    """A small helper of the hot loops: LLVM inlines it into each caller, so no call passes
    the document's array structure a hundred times per record."""
    return cast(_F, njit(**_OPTIONS, forceinline=True)(function))


# Kinds of a slot's value.
NULL = 0  # absent or JSON null
PLAIN = 1  # a string without escapes: the span is its text
ESCAPED = 2  # a string with escapes: the span is its escaped text, unescaped by gather
RAW = 3  # a JSON value kept as text (requestParameters, …)
TRUE = 4
FALSE = 5

# Slots: one per value kept of a record, in the order of analytics.ingest.scan.SLOT_NAMES.
N_RECORD_STRINGS = 16  # eventID … vpcEndpointId
S_EVENT_SOURCE = 3
S_REQUEST_PARAMETERS = 16  # 16-19: JSON-valued fields
S_READ_ONLY = 20
S_MANAGEMENT_EVENT = 21
K_USER_IDENTITY = 22  # record keys that are not slots
K_RESOURCES = 23
S_UI_FIRST = 24  # 24-30: userIdentity strings
S_ISSUER_ARN = 31
S_ON_BEHALF_OF = 32
S_RESOURCE_KEY_ARN = 33
S_REQUEST_KEY_ID = 34
S_ENCRYPTION_CONTEXT = 35
SLOTS = 36

# Reason codes (analytics.ingest.scan.REASONS names them).
OK = 0
INVALID_UTF8 = 1
SYNTAX = 2
SHAPE = 3
TYPE = 4
DUPLICATE = 5
DEPTH = 6
ESCAPED_KEY = 7
SURROGATE = 8
TRAILING = 9
CAPACITY = 10

MAX_DEPTH = 48
"""Containers nested deeper than this send the object to the reference decoder."""


_HASH_SLOTS = 128


def _hash(name: bytes) -> int:
    """The slot of a key name (the kernel computes the same over the document's bytes): from
    its length and its last three bytes only, so a key costs the same whatever its length.
    :func:`_names` refuses a set of names that would share a slot; a key of the document that
    lands on a name's slot is still compared byte for byte."""
    length = len(name)
    return _slot(length, name[length - 1], name[max(length - 2, 0)], name[max(length - 3, 0)])


@register_jitable
def _slot(length: int, last: int, second: int, third: int) -> int:
    """The one slot formula, run by :func:`_hash` in Python for the names and inlined by the
    kernel for each key of the document."""
    h = (length * 37 + last * 11 + second * 5 + third * 7) & 0xFFFFFFFF
    return (h ^ (h >> 7)) & (_HASH_SLOTS - 1)


def _names(*names: str) -> tuple[np.ndarray, np.ndarray]:
    """Key names as one byte array, and an index: their offsets, then a hash table of
    :data:`_HASH_SLOTS` entries giving the name of each hash (-1: none). numba freezes global
    arrays into the compiled code."""
    encoded = [n.encode() for n in names]
    index = np.full(len(encoded) + 1 + _HASH_SLOTS, -1, dtype=np.int64)
    index[0] = 0
    index[1 : len(encoded) + 1] = np.cumsum([len(e) for e in encoded])
    for number, name in enumerate(encoded):
        slot = len(encoded) + 1 + _hash(name)
        assert index[slot] == -1, f"{name!r} shares a hash slot"
        index[slot] = number
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), index


RECORD_KEYS, RECORD_KEY_OFFSETS = _names(
    "eventID", "eventTime", "eventVersion", "eventSource", "eventName", "eventType",
    "eventCategory", "awsRegion", "recipientAccountId", "sourceIPAddress", "userAgent",
    "errorCode", "errorMessage", "sharedEventID", "requestID", "vpcEndpointId",
    "requestParameters", "responseElements", "additionalEventData", "serviceEventDetails",
    "readOnly", "managementEvent", "userIdentity", "resources",
)  # fmt: skip
UI_KEYS, UI_KEY_OFFSETS = _names(
    "type", "principalId", "arn", "accountId", "userName", "invokedBy", "identityProvider",
    "sessionContext", "onBehalfOf",
)  # fmt: skip
SESSION_CONTEXT_KEYS, SESSION_CONTEXT_KEY_OFFSETS = _names("sessionIssuer")
ARN_KEYS, ARN_KEY_OFFSETS = _names("arn")
ON_BEHALF_OF_KEYS, ON_BEHALF_OF_KEY_OFFSETS = _names("userId")
RESOURCE_KEYS, RESOURCE_KEY_OFFSETS = _names("ARN", "arn")
PARAMS_KEYS, PARAMS_KEY_OFFSETS = _names("keyId", "encryptionContext")
TOP_KEYS, TOP_KEY_OFFSETS = _names("Records")
KMS_SOURCE = np.frombuffer(b"kms.amazonaws.com", dtype=np.uint8).copy()
ARN_PREFIX = np.frombuffer(b"arn:", dtype=np.uint8).copy()
KEY_MARK = np.frombuffer(b":key/", dtype=np.uint8).copy()

_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_ONES = np.uint64(0x0101010101010101)
_HIGH_BITS = np.uint64(0x8080808080808080)
_QUOTES = np.uint64(0x2222222222222222)
_BACKSLASHES = np.uint64(0x5C5C5C5C5C5C5C5C)
_SPACES = np.uint64(0x2020202020202020)
_BYTE_INDEX = np.uint64(0x0001020304050607)
"""Multiplied by ``256**k``, its top byte is ``k``: the index of a word's lowest flagged byte."""
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 123, 125, 91, 93


@_kernel
def valid_utf8(buf: np.ndarray) -> bool:
    """Whether ``buf`` is well-formed UTF-8: no overlong forms, surrogates or code points past
    U+10FFFF. Runs of ASCII are skipped eight bytes at a time (CloudTrail is mostly ASCII)."""
    n = buf.shape[0]
    words = buf[: n - (n & 7)].view(np.uint64)
    i = 0
    while i < n:
        if (i & 7) == 0 and i + 32 <= n:
            # Four words at once: one test and one branch per 32 ASCII bytes.
            w = np.uint64(i >> 3)
            four = words[w] | words[w + np.uint64(1)] | words[w + np.uint64(2)]
            if ((four | words[w + np.uint64(3)]) & _HIGH_BITS) == 0:
                i += 32
                continue
        if (i & 7) == 0 and i + 8 <= n and (words[np.uint64(i >> 3)] & _HIGH_BITS) == 0:
            i += 8
            continue
        c = _at(buf, i)
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            if i + 1 >= n or (_at(buf, i + 1) & 0xC0) != 0x80:
                return False
            i += 2
        elif 0xE0 <= c <= 0xEF:
            if i + 2 >= n:
                return False
            c1 = _at(buf, i + 1)
            if (c1 & 0xC0) != 0x80 or (_at(buf, i + 2) & 0xC0) != 0x80:
                return False
            if c == 0xE0 and c1 < 0xA0:
                return False
            if c == 0xED and c1 > 0x9F:
                return False
            i += 3
        elif 0xF0 <= c <= 0xF4:
            if i + 3 >= n:
                return False
            c1 = _at(buf, i + 1)
            if (
                (c1 & 0xC0) != 0x80
                or (_at(buf, i + 2) & 0xC0) != 0x80
                or (_at(buf, i + 3) & 0xC0) != 0x80
            ):
                return False
            if c == 0xF0 and c1 < 0x90:
                return False
            if c == 0xF4 and c1 > 0x8F:
                return False
            i += 4
        else:
            return False
    return True


@_inlined
def _at(buf: np.ndarray, i: int) -> int:
    """``buf[i]`` for an ``i`` already known to lie in ``[0, len(buf))``: an unsigned index
    spares numba's negative-index wrap-around, a branch on every byte read (a sixth of the
    scan's time)."""
    return int(buf[np.uint64(i)])


@_inlined
def _ws(buf: np.ndarray, i: int, n: int) -> int:
    while i < n:
        c = _at(buf, i)
        if c == 32 or c == 10 or c == 13 or c == 9:
            i += 1
        else:
            break
    return i


@_inlined
def _hex4(buf: np.ndarray, i: int, n: int) -> int:
    """The value of four hex digits at ``i``, or -1."""
    if i + 4 > n:
        return -1
    value = 0
    for k in range(4):
        c = buf[i + k]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            return -1
        value = value * 16 + d
    return value


@_inlined
def _string(buf: np.ndarray, i: int, n: int) -> tuple[int, bool]:
    """Validate the string whose opening quote is at ``i``: (index after its closing quote, or a
    negated reason code; whether it holds escapes)."""
    i += 1
    escaped = False
    whole = n - (n & 7)
    words = buf[:whole].view(np.uint64)
    while i < n:
        if i + 16 <= whole:
            # Eight bytes at once, from any position (two aligned words, shifted together):
            # each test sets the high bit of a quote, a backslash, a control character or a
            # non-ASCII byte. None: skip all eight. Else go straight to the first such byte
            # (the lowest flag is always a true one; only flags above it can be false).
            j = np.uint64(i >> 3)
            shift = np.uint64((i & 7) * 8)
            w = words[j]
            if shift:
                w = (w >> shift) | (words[j + np.uint64(1)] << (np.uint64(64) - shift))
            quote = w ^ _QUOTES
            backslash = w ^ _BACKSLASHES
            hits = ((quote - _ONES) & ~quote) | ((backslash - _ONES) & ~backslash)
            hits = (hits | ((w - _SPACES) & ~w) | w) & _HIGH_BITS
            if hits == 0:
                i += 8
                continue
            lowest = hits & (~hits + np.uint64(1))
            i += int(((lowest >> np.uint64(7)) * _BYTE_INDEX) >> np.uint64(56))
        c = _at(buf, i)
        if c == _QUOTE:
            return i + 1, escaped
        if c == _BACKSLASH:
            escaped = True
            if i + 1 >= n:
                return -SYNTAX, escaped
            e = _at(buf, i + 1)
            if e == 117:  # \uXXXX
                code = _hex4(buf, i + 2, n)
                if code < 0:
                    return -SYNTAX, escaped
                if 0xD800 <= code <= 0xDBFF:
                    if i + 12 <= n and _at(buf, i + 6) == _BACKSLASH and _at(buf, i + 7) == 117:
                        low = _hex4(buf, i + 8, n)
                        if 0xDC00 <= low <= 0xDFFF:
                            i += 12
                            continue
                    return -SURROGATE, escaped
                if 0xDC00 <= code <= 0xDFFF:
                    return -SURROGATE, escaped
                i += 6
                continue
            if e in (_QUOTE, _BACKSLASH) or e == 47 or e == 98 or e == 102 or e == 110:
                i += 2
                continue
            if e == 114 or e == 116:
                i += 2
                continue
            return -SYNTAX, escaped
        if c < 0x20:
            return -SYNTAX, escaped
        i += 1
    return -SYNTAX, escaped


@_inlined
def _digits(buf: np.ndarray, i: int, n: int) -> int:
    """Index after one or more digits at ``i``, or -1 if there is none."""
    start = i
    while i < n and 48 <= _at(buf, i) <= 57:
        i += 1
    return i if i > start else -1


@_inlined
def _scalar(buf: np.ndarray, i: int, n: int) -> int:
    """Index after the number or literal at ``i`` (strict JSON grammar), or -SYNTAX."""
    c = _at(buf, i)
    if c == 116:  # true
        if (
            i + 4 <= n
            and _at(buf, i + 1) == 114
            and _at(buf, i + 2) == 117
            and _at(buf, i + 3) == 101
        ):
            return i + 4
        return -SYNTAX
    if c == 102:  # false
        if (i + 5 <= n and _at(buf, i + 1) == 97 and _at(buf, i + 2) == 108
                and _at(buf, i + 3) == 115 and _at(buf, i + 4) == 101):  # fmt: skip
            return i + 5
        return -SYNTAX
    if c == 110:  # null
        if (
            i + 4 <= n
            and _at(buf, i + 1) == 117
            and _at(buf, i + 2) == 108
            and _at(buf, i + 3) == 108
        ):
            return i + 4
        return -SYNTAX
    if c == 45:  # -
        i += 1
        if i >= n:
            return -SYNTAX
        c = _at(buf, i)
    if c == 48:  # a leading zero stands alone
        i += 1
    elif 49 <= c <= 57:
        i = _digits(buf, i, n)
    else:
        return -SYNTAX
    if i < n and _at(buf, i) == 46:  # .
        i = _digits(buf, i + 1, n)
        if i < 0:
            return -SYNTAX
    if i < n and (_at(buf, i) == 101 or _at(buf, i) == 69):  # e E
        i += 1
        if i < n and (_at(buf, i) == 43 or _at(buf, i) == 45):
            i += 1
        i = _digits(buf, i, n)
        if i < 0:
            return -SYNTAX
    return i


@_inlined
def _is_null(buf: np.ndarray, i: int, n: int) -> bool:
    return (
        i + 4 <= n
        and _at(buf, i) == 110
        and _at(buf, i + 1) == 117
        and _at(buf, i + 2) == 108
        and (_at(buf, i + 3) == 108)
    )


@_kernel
def _skip(buf: np.ndarray, i: int, n: int, depth_left: int) -> int:
    """Validate the JSON value starting at ``i`` (no leading whitespace): the index after it,
    or a negated reason code. Containers are walked iteratively with a bit stack."""
    if i >= n:
        return -SYNTAX
    c = _at(buf, i)
    if c != _LBRACE and c != _LBRACKET:
        if c == _QUOTE:
            end, _ = _string(buf, i, n)
            return end
        return _scalar(buf, i, n)
    depth = 0
    objects = 0  # bit d set: the container at depth d is an object (depth stays under 63)
    expect_value = True
    while True:
        if expect_value:
            i = _ws(buf, i, n)
            if i >= n:
                return -SYNTAX
            c = _at(buf, i)
            if c in (_LBRACE, _LBRACKET):
                if depth >= depth_left or depth >= 63:
                    return -DEPTH
                is_object = c == _LBRACE
                bit = 1 << depth
                if is_object:
                    objects |= bit
                else:
                    objects &= ~bit
                depth += 1
                i = _ws(buf, i + 1, n)
                if i >= n:
                    return -SYNTAX
                if _at(buf, i) == (_RBRACE if is_object else _RBRACKET):
                    depth -= 1
                    i += 1
                    expect_value = False
                    if depth == 0:
                        return i
                    continue
                if is_object:
                    if _at(buf, i) != _QUOTE:
                        return -SYNTAX
                    end, _ = _string(buf, i, n)
                    if end < 0:
                        return end
                    i = _ws(buf, end, n)
                    if i >= n or _at(buf, i) != _COLON:
                        return -SYNTAX
                    i += 1
                continue
            if c == _QUOTE:
                end, _ = _string(buf, i, n)
            else:
                end = _scalar(buf, i, n)
            if end < 0:
                return end
            i = end
            expect_value = False
            continue
        # after a value inside the container at depth - 1
        i = _ws(buf, i, n)
        if i >= n:
            return -SYNTAX
        c = _at(buf, i)
        in_object = ((objects >> (depth - 1)) & 1) == 1
        if c == _COMMA:
            i = _ws(buf, i + 1, n)
            if in_object:
                if i >= n or _at(buf, i) != _QUOTE:
                    return -SYNTAX
                end, _ = _string(buf, i, n)
                if end < 0:
                    return end
                i = _ws(buf, end, n)
                if i >= n or _at(buf, i) != _COLON:
                    return -SYNTAX
                i += 1
            expect_value = True
            continue
        if c == (_RBRACE if in_object else _RBRACKET):
            depth -= 1
            i += 1
            if depth == 0:
                return i
            continue
        return -SYNTAX


@_inlined
def _match(buf: np.ndarray, start: int, end: int, names: np.ndarray, offsets: np.ndarray) -> int:
    """The index of the name ``buf[start:end]`` among ``names`` (see :func:`_names`), or -1:
    one hash look-up and one comparison, whatever the number of names."""
    length = end - start
    if length <= 0:
        return -1
    count = offsets.shape[0] - 1 - _HASH_SLOTS
    h = _slot(length, _at(buf, end - 1), _at(buf, max(end - 2, start)),
              _at(buf, max(end - 3, start)))  # fmt: skip
    k = offsets[count + 1 + h]
    if k < 0:
        return -1
    a = offsets[k]
    if offsets[k + 1] - a != length:
        return -1
    for j in range(length):
        if buf[start + j] != names[a + j]:
            return -1
    return int(k)


@_inlined
def _equals(buf: np.ndarray, start: int, end: int, text: np.ndarray) -> bool:
    length = text.shape[0]
    if end - start != length:
        return False
    j = 0
    while j < length and buf[start + j] == text[j]:
        j += 1
    return bool(j == length)


@_kernel
def _names_a_key(text: np.ndarray, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is an ARN (``arn:…``) holding ``:key/``."""
    return (
        end - start >= 4
        and _equals(text, start, start + 4, ARN_PREFIX)
        and _contains(text, start, end, KEY_MARK)
    )


@_kernel
def _contains(buf: np.ndarray, start: int, end: int, text: np.ndarray) -> bool:
    m = text.shape[0]
    for s in range(start, end - m + 1):
        found = True
        for j in range(m):
            if buf[s + j] != text[j]:
                found = False
                break
        if found:
            return True
    return False


@_inlined
def _key(buf: np.ndarray, i: int, n: int) -> tuple[int, int, int, bool]:
    """At a key's opening quote: (index after the colon or a negated code, key start, key end,
    whether the key holds escapes)."""
    if i >= n or _at(buf, i) != _QUOTE:
        return -SYNTAX, 0, 0, False
    end, escaped = _string(buf, i, n)
    if end < 0:
        return end, 0, 0, escaped
    j = _ws(buf, end, n)
    if j >= n or buf[j] != _COLON:
        return -SYNTAX, 0, 0, escaped
    return _ws(buf, j + 1, n), i + 1, end - 1, escaped


@_inlined
def _next_member(buf: np.ndarray, i: int, n: int, close: int) -> tuple[int, bool]:
    """After a member or element: (index of the next one, or after ``close``; whether it was
    the last), or a negated code."""
    i = _ws(buf, i, n)
    if i >= n:
        return -SYNTAX, True
    if _at(buf, i) == _COMMA:
        return _ws(buf, i + 1, n), False
    if _at(buf, i) == close:
        return i + 1, True
    return -SYNTAX, True


@_inlined
def _string_slot(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int, slot: int,
) -> int:  # fmt: skip
    """A kept string field (``str | None``): its span, or null; any other type is refused."""
    if i >= n:
        return -SYNTAX
    if _at(buf, i) == _QUOTE:
        end, escaped = _string(buf, i, n)
        if end < 0:
            return end
        kinds[row, slot] = ESCAPED if escaped else PLAIN
        starts[row, slot] = i + 1
        ends[row, slot] = end - 1
        return end
    if _is_null(buf, i, n):
        kinds[row, slot] = NULL
        return i + 4
    return -TYPE


@_inlined
def _empty_or_first(buf: np.ndarray, i: int, n: int, close: int) -> tuple[int, bool]:
    """After an opening brace or bracket: (index of the first member, whether it is empty)."""
    i = _ws(buf, i + 1, n)
    if i >= n:
        return -SYNTAX, True
    if _at(buf, i) == close:
        return i + 1, True
    return i, False


@_kernel
def _arn_object(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int, slot: int, names: np.ndarray, offsets: np.ndarray, depth: int,
) -> int:  # fmt: skip
    """An object of which one string member (``names``) is kept in ``slot``."""
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0 or empty:
        return i
    seen = False
    while True:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return i
        if escaped:
            return -ESCAPED_KEY
        if _match(buf, ks, ke, names, offsets) == 0:
            if seen:
                return -DUPLICATE
            seen = True
            i = _string_slot(buf, i, n, kinds, starts, ends, row, slot)
        else:
            i = _skip(buf, i, n, MAX_DEPTH - depth)
        if i < 0:
            return i
        i, last = _next_member(buf, i, n, _RBRACE)
        if i < 0 or last:
            return i


@_kernel
def _session_context(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int,
) -> int:  # fmt: skip
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0 or empty:
        return i
    seen = False
    while True:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return i
        if escaped:
            return -ESCAPED_KEY
        if _match(buf, ks, ke, SESSION_CONTEXT_KEYS, SESSION_CONTEXT_KEY_OFFSETS) == 0:
            if seen:
                return -DUPLICATE
            seen = True
            if i < n and _at(buf, i) == _LBRACE:
                i = _arn_object(buf, i, n, kinds, starts, ends, row, S_ISSUER_ARN, ARN_KEYS,
                                ARN_KEY_OFFSETS, 6)  # fmt: skip
            elif _is_null(buf, i, n):
                i += 4
            else:
                return -TYPE
        else:
            i = _skip(buf, i, n, MAX_DEPTH - 5)
        if i < 0:
            return i
        i, last = _next_member(buf, i, n, _RBRACE)
        if i < 0 or last:
            return i


@_kernel
def _user_identity(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int,
) -> int:  # fmt: skip
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0 or empty:
        return i
    seen = 0
    while True:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return i
        if escaped:
            return -ESCAPED_KEY
        k = _match(buf, ks, ke, UI_KEYS, UI_KEY_OFFSETS)
        if k >= 0:
            if seen & (1 << k):
                return -DUPLICATE
            seen |= 1 << k
        if 0 <= k < 7:
            i = _string_slot(buf, i, n, kinds, starts, ends, row, S_UI_FIRST + k)
        elif k == 7 or k == 8:
            if i < n and _at(buf, i) == _LBRACE:
                if k == 7:
                    i = _session_context(buf, i, n, kinds, starts, ends, row)
                else:
                    i = _arn_object(buf, i, n, kinds, starts, ends, row, S_ON_BEHALF_OF,
                                    ON_BEHALF_OF_KEYS, ON_BEHALF_OF_KEY_OFFSETS, 5)  # fmt: skip
            elif _is_null(buf, i, n):
                i += 4
            else:
                return -TYPE
        else:
            i = _skip(buf, i, n, MAX_DEPTH - 4)
        if i < 0:
            return i
        i, last = _next_member(buf, i, n, _RBRACE)
        if i < 0 or last:
            return i


@_kernel
def _resources(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int, scratch: np.ndarray, text: np.ndarray,
) -> int:  # fmt: skip
    """``resources``: a list of objects; the first ``ARN`` (or ``arn``) naming a KMS key wins.

    ``scratch`` (a 3 × 2 span table) holds one element's ARN and arn while it is read; ``text``
    receives an escaped one unescaped."""
    i, empty = _empty_or_first(buf, i, n, _RBRACKET)
    if i < 0 or empty:
        return i
    found = False
    while True:
        if i >= n or _at(buf, i) != _LBRACE:
            return -TYPE
        scratch[0, 0] = NULL
        scratch[0, 1] = NULL
        i, empty = _empty_or_first(buf, i, n, _RBRACE)
        if i < 0:
            return i
        seen = 0
        while not empty:
            i, ks, ke, escaped = _key(buf, i, n)
            if i < 0:
                return i
            if escaped:
                return -ESCAPED_KEY
            k = _match(buf, ks, ke, RESOURCE_KEYS, RESOURCE_KEY_OFFSETS)
            if k >= 0:
                if seen & (1 << k):
                    return -DUPLICATE
                seen |= 1 << k
                if i < n and _at(buf, i) == _QUOTE:
                    end, esc = _string(buf, i, n)
                    if end < 0:
                        return end
                    scratch[0, k] = ESCAPED if esc else PLAIN
                    scratch[1, k] = i + 1
                    scratch[2, k] = end - 1
                    i = end
                elif _is_null(buf, i, n):
                    i += 4
                else:
                    return -TYPE
            else:
                i = _skip(buf, i, n, MAX_DEPTH - 5)
            if i < 0:
                return i
            i, empty = _next_member(buf, i, n, _RBRACE)
            if i < 0:
                return i
        if not found:
            # resource.ARN or resource.arn: an empty ARN gives way to arn
            k = 0
            if scratch[0, 0] == NULL or scratch[2, 0] == scratch[1, 0]:
                k = 1
            if scratch[0, k] != NULL:
                s, e = scratch[1, k], scratch[2, k]
                if scratch[0, k] == PLAIN:
                    names_a_key = _names_a_key(buf, s, e)
                elif e - s > text.shape[0]:
                    return -CAPACITY
                else:
                    names_a_key = _names_a_key(text, 0, _unescape(buf, s, e, text, 0))
                if names_a_key:
                    found = True
                    kinds[row, S_RESOURCE_KEY_ARN] = scratch[0, k]
                    starts[row, S_RESOURCE_KEY_ARN] = s
                    ends[row, S_RESOURCE_KEY_ARN] = e
        i, last = _next_member(buf, i, n, _RBRACKET)
        if i < 0 or last:
            return i


@_kernel
def _request_parameters(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int,
) -> tuple[int, int]:  # fmt: skip
    """An object ``requestParameters``: validated whole; its ``keyId`` and ``encryptionContext``
    noted for a KMS event. Returns (index after it or a negated code, a reason that matters only
    if the event turns out to be a KMS one, or -1 if ``keyId`` is not a string: no KMS values)."""
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0 or empty:
        return i, OK
    seen = 0
    odd = OK
    key_not_text = False
    while True:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return i, odd
        k = _match(buf, ks, ke, PARAMS_KEYS, PARAMS_KEY_OFFSETS)
        if escaped and odd == OK:
            odd = ESCAPED_KEY
        if k >= 0:
            if seen & (1 << k) and odd == OK:
                odd = DUPLICATE
            seen |= 1 << k
        start = i
        i = _skip(buf, i, n, MAX_DEPTH - 4)
        if i < 0:
            return i, odd
        if k == 0:
            if buf[start] == _QUOTE:
                _, esc = _string(buf, start, n)
                kinds[row, S_REQUEST_KEY_ID] = ESCAPED if esc else PLAIN
                starts[row, S_REQUEST_KEY_ID] = start + 1
                ends[row, S_REQUEST_KEY_ID] = i - 1
            elif not _is_null(buf, start, n):
                key_not_text = True
        elif k == 1:
            if buf[start] == _LBRACE:
                kinds[row, S_ENCRYPTION_CONTEXT] = RAW
                starts[row, S_ENCRYPTION_CONTEXT] = start
                ends[row, S_ENCRYPTION_CONTEXT] = i
            else:
                kinds[row, S_ENCRYPTION_CONTEXT] = NULL
        i, last = _next_member(buf, i, n, _RBRACE)
        if i < 0:
            return i, odd
        if last:
            # A keyId that is not a string fails the reference's decode of the whole parameters,
            # whatever else they hold: the event keeps no KMS values.
            return i, -1 if key_not_text else odd


@_kernel
def _record(
    buf: np.ndarray, i: int, n: int, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    row: int, scratch: np.ndarray, text: np.ndarray,
) -> int:  # fmt: skip
    for slot in range(SLOTS):
        kinds[row, slot] = NULL
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0 or empty:
        return i
    seen = 0
    params_odd = OK
    while True:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return i
        if escaped:
            return -ESCAPED_KEY
        k = _match(buf, ks, ke, RECORD_KEYS, RECORD_KEY_OFFSETS)
        if k >= 0:
            if seen & (1 << k):
                return -DUPLICATE
            seen |= 1 << k
        if 0 <= k < N_RECORD_STRINGS:
            i = _string_slot(buf, i, n, kinds, starts, ends, row, k)
        elif k == S_REQUEST_PARAMETERS and i < n and _at(buf, i) == _LBRACE:
            start = i
            i, params_odd = _request_parameters(buf, i, n, kinds, starts, ends, row)
            if i >= 0:
                kinds[row, k] = RAW
                starts[row, k] = start
                ends[row, k] = i
        elif S_REQUEST_PARAMETERS <= k < S_READ_ONLY:
            start = i
            i = _skip(buf, i, n, MAX_DEPTH - 3)
            if i >= 0 and not _is_null(buf, start, n):
                kinds[row, k] = RAW
                starts[row, k] = start
                ends[row, k] = i
        elif k in (S_READ_ONLY, S_MANAGEMENT_EVENT):
            if i >= n:
                return -SYNTAX
            c = _at(buf, i)
            if c != 110 and c != 116 and c != 102:
                return -TYPE
            end = _scalar(buf, i, n)
            if end < 0:
                return -TYPE
            if c == 116:
                kinds[row, k] = TRUE
            elif c == 102:
                kinds[row, k] = FALSE
            i = end
        elif k == K_USER_IDENTITY:
            if i < n and _at(buf, i) == _LBRACE:
                i = _user_identity(buf, i, n, kinds, starts, ends, row)
            elif _is_null(buf, i, n):
                i += 4
            else:
                return -TYPE
        elif k == K_RESOURCES:
            if i < n and _at(buf, i) == _LBRACKET:
                i = _resources(buf, i, n, kinds, starts, ends, row, scratch, text)
            elif _is_null(buf, i, n):
                i += 4
            else:
                return -TYPE
        else:
            i = _skip(buf, i, n, MAX_DEPTH - 3)
        if i < 0:
            return i
        i, last = _next_member(buf, i, n, _RBRACE)
        if i < 0:
            return i
        if last:
            break
    # requestKeyId and encryptionContext belong to KMS events only.
    source_kind = kinds[row, S_EVENT_SOURCE]
    s, e = starts[row, S_EVENT_SOURCE], ends[row, S_EVENT_SOURCE]
    if source_kind == PLAIN:
        kms = _equals(buf, s, e, KMS_SOURCE)
    elif source_kind == ESCAPED and e - s <= min(text.shape[0], 6 * KMS_SOURCE.shape[0]):
        kms = _equals(text, 0, _unescape(buf, s, e, text, 0), KMS_SOURCE)
    else:
        kms = False
    if kms and params_odd > 0:
        return -params_odd
    if not kms or params_odd < 0:
        kinds[row, S_REQUEST_KEY_ID] = NULL
        kinds[row, S_ENCRYPTION_CONTEXT] = NULL
    return i


@_kernel
def scan(
    buf: np.ndarray, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray,
    sizes: np.ndarray, scratch: np.ndarray, text: np.ndarray,
) -> tuple[int, int, int]:  # fmt: skip
    """Scan a whole ``{"Records": [...]}`` document: (reason code, records, byte offset where
    scanning stopped). Reason :data:`OK` means every record's spans are in the tables, and
    ``sizes`` (``int64``, one per slot, zeroed by the caller) the bytes each slot's values span.

    ``scratch`` (``int64``, 3 × 2) and ``text`` (``uint8``) are work space, so that no kernel
    allocates. The whole document is validated as UTF-8 first, here, with the GIL released.
    """
    n = buf.shape[0]
    if not valid_utf8(buf):
        return INVALID_UTF8, 0, 0
    capacity = kinds.shape[0]
    rows = 0
    seen_records = False
    i = _ws(buf, 0, n)
    if i >= n or _at(buf, i) != _LBRACE:
        return SHAPE, 0, i
    i, empty = _empty_or_first(buf, i, n, _RBRACE)
    if i < 0:
        return SYNTAX, 0, n
    while not empty:
        i, ks, ke, escaped = _key(buf, i, n)
        if i < 0:
            return -i, rows, ks
        if escaped:
            return ESCAPED_KEY, rows, ks
        if _match(buf, ks, ke, TOP_KEYS, TOP_KEY_OFFSETS) == 0:
            if seen_records:
                return DUPLICATE, rows, ks
            seen_records = True
            if i >= n or _at(buf, i) != _LBRACKET:
                return SHAPE, rows, i
            i, done = _empty_or_first(buf, i, n, _RBRACKET)
            while i >= 0 and not done:
                if i >= n or _at(buf, i) != _LBRACE:
                    return SHAPE, rows, i
                if rows >= capacity:
                    return CAPACITY, rows, i
                i = _record(buf, i, n, kinds, starts, ends, rows, scratch, text)
                if i < 0:
                    break
                for slot in range(SLOTS):
                    kind = kinds[rows, slot]
                    if PLAIN <= kind <= RAW:  # PLAIN, ESCAPED, RAW
                        sizes[slot] += ends[rows, slot] - starts[rows, slot]
                rows += 1
                i, done = _next_member(buf, i, n, _RBRACKET)
            if i < 0:
                return -i, rows, 0
        else:
            i = _skip(buf, i, n, MAX_DEPTH - 1)
            if i < 0:
                return -i, rows, 0
        i, empty = _next_member(buf, i, n, _RBRACE)
        if i < 0:
            return -i, rows, 0
    if not seen_records:
        return SHAPE, 0, i
    if _ws(buf, i, n) != n:
        return TRAILING, rows, i
    return OK, rows, i


@_kernel
def _unescape(buf: np.ndarray, start: int, end: int, out: np.ndarray, at: int) -> int:
    """Write the unescaped text of ``buf[start:end]`` (validated by :func:`scan`) at ``out[at]``;
    returns the index after it. Never writes more bytes than it reads."""
    i = start
    limit = min(end, buf.shape[0])
    while i < limit:
        c = _at(buf, i)
        if c != _BACKSLASH or i + 1 >= limit:
            out[at] = c
            at += 1
            i += 1
            continue
        e = _at(buf, i + 1)
        if e == 117:
            code = _hex4(buf, i + 2, limit)
            i += 6
            if code < 0:
                return at
            if 0xD800 <= code <= 0xDBFF:
                low = _hex4(buf, i + 2, limit) if i + 1 < limit else -1
                if low < 0xDC00 or low > 0xDFFF:
                    return at
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                i += 6
            if code < 0x80:
                out[at] = code
                at += 1
            elif code < 0x800:
                out[at] = 0xC0 | (code >> 6)
                out[at + 1] = 0x80 | (code & 0x3F)
                at += 2
            elif code < 0x10000:
                out[at] = 0xE0 | (code >> 12)
                out[at + 1] = 0x80 | ((code >> 6) & 0x3F)
                out[at + 2] = 0x80 | (code & 0x3F)
                at += 3
            else:
                out[at] = 0xF0 | (code >> 18)
                out[at + 1] = 0x80 | ((code >> 12) & 0x3F)
                out[at + 2] = 0x80 | ((code >> 6) & 0x3F)
                out[at + 3] = 0x80 | (code & 0x3F)
                at += 4
            continue
        if e == 98:
            out[at] = 8
        elif e == 102:
            out[at] = 12
        elif e == 110:
            out[at] = 10
        elif e == 114:
            out[at] = 13
        elif e == 116:
            out[at] = 9
        else:  # \" \\ \/
            out[at] = e
        at += 1
        i += 2
    return at


def _copy_bytes_typed(
    typingctx: Any, out: Any, at: Any, src: Any, start: Any, count: Any
) -> tuple[Any, Callable[..., Any]]:
    """``out[at:at + count] = src[start:start + count]`` as one ``llvm.memcpy`` (a call to the
    C library's, vectorised for any length) instead of a byte loop: the values are short, and
    the loop's set-up per value cost as much as its copying. Bounds are the caller's to check
    first, as for every index in this module."""
    signature = types.void(out, at, src, start, count)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        out_value, at_value, src_value, start_value, count_value = args
        to = context.make_array(sig.args[0])(context, builder, out_value)
        source = context.make_array(sig.args[2])(context, builder, src_value)
        at_value = context.cast(builder, at_value, sig.args[1], types.intp)
        start_value = context.cast(builder, start_value, sig.args[3], types.intp)
        count_value = context.cast(builder, count_value, sig.args[4], types.intp)
        destination = builder.gep(to.data, [at_value])
        origin = builder.gep(source.data, [start_value])
        cgutils.raw_memcpy(builder, destination, origin, count_value, 1)  # type: ignore[no-untyped-call]
        return context.get_dummy_value()

    return signature, codegen


_copy_bytes: Any = intrinsic(_copy_bytes_typed)


_CHECKED_COPIES = bool(getattr(config, "BOUNDSCHECK", None))
"""Under ``NUMBA_BOUNDSCHECK=1`` (the bounds test) values are copied by checked indexing, so
that test proves the guards before each copy keep it inside both arrays; a compile-time
constant, so the production build has no branch for it."""


@_inlined
def _copy(src: np.ndarray, start: int, end: int, out: np.ndarray, at: int) -> int:
    """Copy ``src[start:end]`` to ``out[at:]`` (bounds checked by the caller); returns the index
    after it."""
    if _CHECKED_COPIES:
        for j in range(end - start):
            out[at + j] = src[start + j]
    else:
        _copy_bytes(out, at, src, start, end - start)
    return at + (end - start)


@_kernel
def gather(
    buf: np.ndarray, kinds: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: int,
    first_row: int, text_slots: np.ndarray, offsets: np.ndarray, data: np.ndarray,
    bases: np.ndarray, cursors: np.ndarray, validity: np.ndarray,
) -> bool:  # fmt: skip
    """Append one scanned object's values to a batch's Arrow buffers.

    Text column ``c`` (slot ``text_slots[c]``) owns ``data[bases[c]:bases[c + 1]]``; row
    ``first_row + r``'s value is written at ``data[cursors[c]:]`` (never past its region), its
    end offset (relative to ``bases[c]``) at ``offsets[c, first_row + r + 1]`` and its validity
    bit. Text slots hold strings and raw JSON only (never TRUE or FALSE). The boolean slots
    (read-only, management event) are columns ``len(text_slots)`` and the next, as validity
    and value bits in ``validity``'s last four rows. Returns False if the arrays do not fit
    each other, a span lies outside ``buf`` or a column would overflow (the caller falls back).

    Row by row, so the document is read once from front to back while it is still in cache
    (column by column read it once per column: a third slower on a chunk of objects).
    """
    n = buf.shape[0]
    columns = text_slots.shape[0]
    if rows < 0 or first_row < 0 or rows > kinds.shape[0] or rows > starts.shape[0]:
        return False
    if rows > ends.shape[0] or kinds.shape[1] < SLOTS or starts.shape[1] < SLOTS:
        return False
    if ends.shape[1] < SLOTS or bases.shape[0] != columns + 1 or cursors.shape[0] != columns:
        return False
    if offsets.shape[0] != columns or offsets.shape[1] < first_row + rows + 1:
        return False
    if validity.shape[0] != columns + 4 or validity.shape[1] * 8 < first_row + rows:
        return False
    if bases[0] < 0 or bases[columns] > data.shape[0]:
        return False
    for c in range(columns):
        slot = text_slots[c]
        if slot < 0 or slot >= SLOTS or bases[c] > bases[c + 1]:
            return False
        if cursors[c] < bases[c] or cursors[c] > bases[c + 1]:
            return False
    for r in range(rows):
        row = first_row + r
        for c in range(columns):
            slot = text_slots[c]
            at = cursors[c]
            kind = kinds[r, slot]
            if kind != NULL:
                s, e = starts[r, slot], ends[r, slot]
                if s < 0 or e > n or s > e or at + (e - s) > bases[c + 1]:
                    return False
                if kind == ESCAPED:
                    at = _unescape(buf, s, e, data, at)
                else:
                    at = _copy(buf, s, e, data, at)
                cursors[c] = at
                validity[c, row >> 3] |= np.uint8(1 << (row & 7))
            offsets[c, row + 1] = at - bases[c]
    flags = columns
    for b in range(2):
        slot = S_READ_ONLY + b
        for r in range(rows):
            row = first_row + r
            kind = kinds[r, slot]
            if kind in (TRUE, FALSE):
                validity[flags + 2 * b, row >> 3] |= np.uint8(1 << (row & 7))
                if kind == TRUE:
                    validity[flags + 2 * b + 1, row >> 3] |= np.uint8(1 << (row & 7))
    return True
