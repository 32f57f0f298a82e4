"""The floor: ISA-L gunzip + a typed msgspec decode of only the fields the schema needs.

Nothing is normalised, converted to Arrow or written: this is what any ingest of the same files
must at least pay, measured on the same cores (one process per worker) in the same run.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

from isal import igzip

# The very decoder ingest uses: the floor is the decode itself, without anything after it.
from analytics.ingest.cloudtrail import DOCUMENT_DECODER


def _one(path: str) -> tuple[int, int]:
    data: bytes = igzip.decompress(Path(path).read_bytes())  # type: ignore[no-untyped-call]
    return len(DOCUMENT_DECODER.decode(data).Records), len(data)


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
