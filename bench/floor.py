"""The floor: ISA-L gunzip + a typed msgspec decode of only the fields the schema needs.

Nothing is normalised, converted to Arrow or written: this is what any ingest of the same files
must at least pay, measured on the same cores (one process per worker) in the same run.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import msgspec
from isal import igzip


class _Issuer(msgspec.Struct, gc=False):
    arn: str | None = None


class _Context(msgspec.Struct, gc=False):
    sessionIssuer: _Issuer | None = None


class _Identity(msgspec.Struct, gc=False):
    type: str | None = None
    principalId: str | None = None
    arn: str | None = None
    accountId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    sessionContext: _Context | None = None


class _Resource(msgspec.Struct, gc=False):
    ARN: str | None = None


class _Record(msgspec.Struct, gc=False):
    eventID: str | None = None
    eventTime: str | None = None
    eventVersion: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    eventType: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    userIdentity: _Identity | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    readOnly: bool | None = None
    resources: list[_Resource] | None = None
    requestParameters: msgspec.Raw = msgspec.Raw(b"")
    responseElements: msgspec.Raw = msgspec.Raw(b"")
    sharedEventID: str | None = None
    requestID: str | None = None


class _Document(msgspec.Struct, gc=False):
    Records: list[_Record]


_DECODER = msgspec.json.Decoder(_Document, strict=False)


def _one(path: str) -> tuple[int, int]:
    data = igzip.decompress(Path(path).read_bytes())
    return len(_DECODER.decode(data).Records), len(data)


def run(files: list[str], workers: int) -> tuple[int, int]:
    """(events, bytes of JSON) over ``files`` with ``workers`` processes."""
    if workers <= 1:
        results = [_one(f) for f in files]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_one, files, chunksize=16)
    return sum(r[0] for r in results), sum(r[1] for r in results)


if __name__ == "__main__":
    listed = Path(sys.argv[1]).read_text().split()
    events, size = run(listed, int(sys.argv[2]))
    print(f"{events} {size}")
