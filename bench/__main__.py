"""``make bench``: ingest and detection speed as ratios to a floor measured in the same run.

Every contender runs in a fresh process on the same files and the same cores, one after the
other, with the files already in the page cache; peak memory is the largest sum of resident
memory over the process and its children, sampled every 20 ms. Nothing here is a pass/fail
test: the figures are printed, and written to ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from analytics.ingest.layout import Kind, classify

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".bench"
PYTHON = sys.executable
RUNNERS = (
    ("read tasks, threads", "threads", None),
    ("read tasks, Dask 1 worker", "dask", 1),
    ("read tasks, Dask 2 workers", "dask", 2),
)
"""The flow's runners over the same driver (bench/runners.py): role, runner, workers (None: as
many as ``--workers``)."""


@dataclass
class Measure:
    name: str
    seconds: float
    peak_rss_mb: float
    output: str


def measure(name: str, args: list[str], env_extra: dict[str, str] | None = None) -> Measure:
    """Run ``args`` in a fresh process; wall time and peak RSS of its whole process tree."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(env_extra or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                total = root.memory_info().rss + sum(
                    c.memory_info().rss for c in root.children(recursive=True)
                )
                peak = max(peak, total)
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed ({process.returncode}):\n{stderr[-3000:]}")
    return Measure(name, seconds, peak / 1e6, stdout.strip())


def ensure_tree(path: Path, days: int, events_per_day: int, seed: int) -> None:
    if (path / "labels.json").exists():
        print(f"reusing {path}", flush=True)
        return
    if path.exists():
        shutil.rmtree(path)
    print(f"generating {days} days × {events_per_day:,} events into {path} …", flush=True)
    args = [PYTHON, "-m", "flows", "generate", str(path), "--days", str(days),
            "--events-per-day", str(events_per_day), "--seed", str(seed)]  # fmt: skip
    result = measure("generate", args)
    print(f"  {result.output}  ({result.seconds:.1f} s)", flush=True)


def log_files(tree: Path) -> list[str]:
    files = []
    for path in sorted(tree.rglob("*.json.gz")):
        if classify(path.relative_to(tree).as_posix())[0] is Kind.LOG:
            files.append(str(path))
    return files


def warm(files: list[str]) -> int:
    return sum(len(Path(f).read_bytes()) for f in files)


def bench_ingest(args: argparse.Namespace) -> dict[str, object]:
    """Floor, keytrail, the flow's runners and the DuckDB peer, in rounds: each round runs them
    all back to back.

    Shared cores make single timings swing by a third; a ratio taken within one round compares
    contenders under the same conditions, and the median over rounds is what is reported.
    """
    days = 7
    tree = args.cache / f"ingest-tree-{args.events}"
    ensure_tree(tree, days, max(args.events // days, 10), seed=1)
    files = log_files(tree)
    gz_bytes = warm(files)
    workers = args.workers
    rounds: list[dict[str, Measure]] = []
    scanned: list[tuple[int, int, dict[str, int]]] = []
    written = events = json_bytes = 0
    start_up = scanner_start_up(args.cache)
    with tempfile.TemporaryDirectory(dir=args.cache) as scratch:
        listing = Path(scratch) / "files.txt"
        listing.write_text("\n".join(files))
        for number in range(1, args.rounds + 1):
            print(f"ingest round {number} of {args.rounds} …", flush=True)
            floor = measure("floor", [PYTHON, "-m", "bench.floor", str(listing), str(workers)])
            events, json_bytes = (int(x) for x in floor.output.split())
            lake = Path(scratch) / "lake"
            shutil.rmtree(lake, ignore_errors=True)
            ingest = measure(
                "keytrail ingest",
                [PYTHON, "-m", "flows", "ingest", str(tree), "--lake", str(lake),
                 "--workers", str(workers), "--json"],
            )  # fmt: skip
            ingested = json.loads(ingest.output)
            written = ingested["events_written"]
            scanned.append((ingested["objects_scanned"], ingested["objects_ingested"],
                            ingested["scanner_fallbacks"]))  # fmt: skip
            shutil.rmtree(lake, ignore_errors=True)
            reference = measure(
                "ingest, reference decoder",
                [PYTHON, "-m", "flows", "ingest", str(tree), "--lake", str(lake),
                 "--workers", str(workers), "--json"],
                {"KEYTRAIL_SCANNER": "reference"},
            )  # fmt: skip
            if json.loads(reference.output)["events_written"] != written:
                raise SystemExit("the reference decoder wrote other events than the scanner")
            runs = {"floor": floor, "ingest": ingest, "reference": reference}
            for role, runner, count in RUNNERS:
                shutil.rmtree(lake, ignore_errors=True)
                runs[role] = measure(
                    role, [PYTHON, "-m", "bench.runners", str(tree), str(lake), runner,
                           str(workers if count is None else count)]
                )  # fmt: skip
                if int(runs[role].output) != written:
                    raise SystemExit(f"{role} wrote {runs[role].output} events, not {written:,}")
            out = Path(scratch) / "duckdb-tuned.parquet"
            out.unlink(missing_ok=True)
            peer = measure(
                "duckdb read_json (tuned)",
                [PYTHON, "-m", "bench.duckdb_peer", str(listing), str(out), "tuned", str(workers)],
            )
            if not written == int(peer.output) == events:
                raise SystemExit(
                    f"the contenders did not read the same events: floor {events:,}, "
                    f"keytrail {written:,}, DuckDB {int(peer.output):,}"
                )
            rounds.append({**runs, "peer": peer})
    ratio_floor = [r["floor"].seconds / r["ingest"].seconds for r in rounds]
    ratio_peer = [r["peer"].seconds / r["ingest"].seconds for r in rounds]
    print()
    print(f"ingest: {len(files):,} log files, {events:,} events, {gz_bytes / 1e6:,.0f} MB gzip, "
          f"{json_bytes / 1e6:,.0f} MB JSON, {workers} worker(s) on {os.cpu_count()} core(s), "
          f"median of {len(rounds)} round(s)")  # fmt: skip
    print(f"{'':28}{'seconds':>9}{'range':>15}{'events/s':>11}{'MB/s JSON':>11}"
          f"{'peak RSS MB':>13}")  # fmt: skip
    for role in ("floor", "ingest", "reference", *(role for role, _, _ in RUNNERS), "peer"):
        times = [r[role].seconds for r in rounds]
        middle = statistics.median(times)
        peak = max(r[role].peak_rss_mb for r in rounds)
        spread = f"{min(times):.2f}–{max(times):.2f}"
        print(f"{rounds[0][role].name:28}{middle:9.2f}{spread:>15}{events / middle:11,.0f}"
              f"{json_bytes / 1e6 / middle:11,.0f}{peak:13,.0f}")  # fmt: skip
    print(f"ingest / floor (speed): {statistics.median(ratio_floor):.2f} "
          f"({min(ratio_floor):.2f}–{max(ratio_floor):.2f})   ingest / DuckDB read_json: "
          f"{statistics.median(ratio_peer):.2f}× ({min(ratio_peer):.2f}–{max(ratio_peer):.2f})   "
          f"events written: {written:,}")  # fmt: skip
    taken, ingested, fallbacks = scanned[-1]
    fell_back = (ingested - taken) / ingested if ingested else 0.0
    ratio_reference = [r["reference"].seconds / r["ingest"].seconds for r in rounds]
    print(f"compiled scanner: {taken:,} of {ingested:,} objects, {fell_back:.1%} fell back to the "
          f"reference decoder {fallbacks or ''}; {statistics.median(ratio_reference):.2f}× the "
          f"reference decoder's speed; first call {start_up['compile']:.1f} s to compile "
          f"(once per install), {start_up['cached']:.2f} s to load from the cache")  # fmt: skip
    by_runner = {}
    for role, _, _ in RUNNERS:
        ratios = [r["floor"].seconds / r[role].seconds for r in rounds]
        by_runner[role] = statistics.median(ratios)
        print(f"{role} / floor (speed): {by_runner[role]:.2f} "
              f"({min(ratios):.2f}–{max(ratios):.2f})")  # fmt: skip
    return {
        "runners_vs_floor": by_runner,
        "files": len(files), "events": events, "gzip_bytes": gz_bytes, "json_bytes": json_bytes,
        "workers": workers,
        "rounds": [{role: asdict(m) for role, m in r.items()} for r in rounds],
        "ingest_vs_floor": statistics.median(ratio_floor),
        "ingest_vs_duckdb_tuned": statistics.median(ratio_peer),
        "ingest_vs_reference_decoder": statistics.median(ratio_reference),
        "scanner_fallback_share": fell_back, "scanner_fallbacks": fallbacks,
        "scanner_first_call_seconds": start_up,
        "events_written": written,
    }  # fmt: skip


def scanner_start_up(cache: Path) -> dict[str, float]:
    """Seconds a fresh process takes to its first scanned document: with an empty numba cache
    (the compile, once per install) and again with the cache it filled."""
    with tempfile.TemporaryDirectory(dir=cache) as folder:
        env = {"NUMBA_CACHE_DIR": folder}
        compile_run = measure("scanner, first call", [PYTHON, "-m", "bench.scanner_start"], env)
        cached_run = measure("scanner, cached", [PYTHON, "-m", "bench.scanner_start"], env)
    return {"compile": float(compile_run.output), "cached": float(cached_run.output)}


def bench_detect(args: argparse.Namespace) -> dict[str, object]:
    days, per_day = args.detect_days, args.detect_events_per_day
    tree = args.cache / f"detect-tree-{days}x{per_day}"
    ensure_tree(tree, days, per_day, seed=3)
    lake = args.cache / f"detect-lake-{days}x{per_day}"
    if not (lake / "_state" / "objects.parquet").exists():
        print(f"ingesting {tree} …", flush=True)
        result = measure("ingest", [PYTHON, "-m", "flows", "ingest", str(tree), "--lake", str(lake),
                                    "--json", "--workers", str(args.workers)])  # fmt: skip
        print(f"  {json.loads(result.output)['events_written']:,} events in {result.seconds:.1f} s")
    labels = json.loads((tree / "labels.json").read_text())
    first = labels["start"]
    import datetime as dt

    last = (dt.date.fromisoformat(first) + dt.timedelta(days=days - 1)).isoformat()
    features_root = lake / "features" / "hourly"
    backfill = None
    if not features_root.exists():
        backfill = measure("features backfill + detect", [PYTHON, "-m", "flows", "detect", "--lake",
                                                          str(lake), "--date", last, "--json"])  # fmt: skip
    day_features = features_root / f"event_date={last}"
    shutil.rmtree(day_features, ignore_errors=True)
    nightly = measure("nightly: features + baselines + detect",
                      [PYTHON, "-m", "flows", "detect", "--lake", str(lake), "--date", last, "--json"])  # fmt: skip
    summary = json.loads(nightly.output)
    print()
    print(f"detect for {last} over a {days}-day lake of {per_day:,} events/day:")
    if backfill:
        print(f"  first run (features for all {days} days): {backfill.seconds:.1f} s, "
              f"peak RSS {backfill.peak_rss_mb:,.0f} MB")  # fmt: skip
    print(f"  nightly (one day's features, baselines, rules, forest): {nightly.seconds:.1f} s, "
          f"peak RSS {nightly.peak_rss_mb:,.0f} MB; stages {summary['timings']}; "
          f"{summary['alerts']} alerts")  # fmt: skip
    return {
        "days": days, "events_per_day": per_day, "nightly": asdict(nightly),
        "backfill": asdict(backfill) if backfill else None, "summary": summary,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the ingest tree")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds; the median is shown")
    parser.add_argument("--detect-days", type=int, default=30)
    parser.add_argument("--detect-events-per-day", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where generated trees, lakes and results.json are kept")  # fmt: skip
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-detect", action="store_true")
    args = parser.parse_args()
    args.cache = args.cache.resolve()
    args.cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    if not args.skip_ingest:
        results["ingest"] = bench_ingest(args)
    if not args.skip_detect:
        results["detect"] = bench_detect(args)
    (args.cache / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {args.cache / 'results.json'}")


if __name__ == "__main__":
    main()
