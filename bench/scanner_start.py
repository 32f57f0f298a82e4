"""``python -m bench.scanner_start``: what the compiled scanner's first call costs in a process.

Imports :mod:`analytics.ingest.scan` and scans and gathers one small document, then prints the seconds
that took. Run with an empty ``NUMBA_CACHE_DIR`` it is the compile of a fresh install; run
again with the same folder it is what every later process pays to load the cached code.
"""

from __future__ import annotations

import time

started = time.perf_counter()

from analytics.ingest import scan  # noqa: E402  (the import is part of what is measured)

_DOCUMENT = b'{"Records": [{"eventID": "e", "eventTime": "2026-11-02T10:00:00Z"}]}'


def main() -> None:
    scanned = scan.scan_document(_DOCUMENT)
    assert not isinstance(scanned, str), scanned
    scan.to_columns([scanned])
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
