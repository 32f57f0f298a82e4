"""Turn the raw bytes of a source object into JSON text, refusing anything suspicious.

The bytes are sniffed, never trusted by name: a ``.json.gz`` key may hold plain JSON and a
``.json`` key may hold gzip. One bound, ``max_bytes``, applies twice: to the object as stored
(sources read at most ``max_bytes + 1`` bytes of it, so a huge plain object is refused without
being read whole) and to its decompressed text (so a gzip bomb costs at most ``max_bytes`` of
memory before it is refused).
"""

from __future__ import annotations

from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024
_GZIP_WBITS = 31  # gzip header and trailer, as CloudTrail writes them
_JSON_START = frozenset(b"{[ \t\r\n")


class RejectedObject(ValueError):
    """The whole object is unusable; the message is the one-line reason shown to the user."""


def _first_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data[:4])


def too_large(max_bytes: int) -> str:
    """The reason given for an object larger than the bound as stored."""
    return f"larger than the {max_bytes:,}-byte bound"


def to_json_bytes(data: bytes, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Return the JSON text held by ``data`` (gzip or plain), or raise :class:`RejectedObject`.

    ``data`` may be the first ``max_bytes + 1`` bytes of a longer object: anything longer than
    ``max_bytes`` is refused before it is looked at.
    """
    if not data:
        raise RejectedObject("empty object (0 bytes)")
    if len(data) > max_bytes:
        raise RejectedObject(too_large(max_bytes))
    if data[:2] == GZIP_MAGIC:
        return _gunzip_bounded(data, max_bytes)
    stripped = data.lstrip(b"\xef\xbb\xbf")  # a UTF-8 BOM is harmless; anything else is not JSON
    if stripped and stripped[0] in _JSON_START:
        return stripped
    raise RejectedObject(f"not gzip or JSON (first bytes {_first_bytes(data)})")


def _gunzip_bounded(data: bytes, max_bytes: int) -> bytes:
    """Gunzip every member of ``data`` without ever holding more than ``max_bytes`` of output."""
    parts: list[bytes] = []
    produced = 0
    remaining = data
    while remaining:
        inflater = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        try:
            chunk = inflater.decompress(remaining, max_bytes - produced + 1)
        except Exception as exc:  # isal_zlib.error; untyped module
            raise RejectedObject(f"corrupt gzip ({exc})") from None
        produced += len(chunk)
        if produced > max_bytes:
            raise RejectedObject(f"decompresses to more than the {max_bytes:,}-byte bound")
        parts.append(chunk)
        if not inflater.eof:
            raise RejectedObject("truncated gzip (stream ends before its trailer)")
        remaining = inflater.unused_data
        # Trailing zero padding after the last member is tolerated, as gzip(1) does.
        if remaining and not remaining.startswith(GZIP_MAGIC):
            if remaining.strip(b"\x00"):
                raise RejectedObject("unexpected bytes after the gzip stream")
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)
