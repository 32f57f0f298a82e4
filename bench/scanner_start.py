"""``python -m bench.scanner_start``: what the compiled scanner's first call costs in a process.

Imports :mod:`analytics.ingest.scan` and loads its kernels (:func:`~analytics.ingest.scan.load`:
one small document scanned and gathered), then prints the seconds that took. Run with an empty
``NUMBA_CACHE_DIR`` it is the compile of a fresh install; run again with the same folder it is
what every later process pays to load the cached code.
"""

from __future__ import annotations

import time

started = time.perf_counter()

from analytics.ingest import scan  # noqa: E402  (the import is part of what is measured)


def main() -> None:
    scan.load()
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
