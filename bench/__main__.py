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
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from analytics.layout import Kind, classify

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
PYTHON = sys.executable


@dataclass
class Measure:
    name: str
    seconds: float
    peak_rss_mb: float
    output: str


def measure(name: str, args: list[str]) -> Measure:
    """Run ``args`` in a fresh process; wall time and peak RSS of its whole process tree."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
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
    days = 7
    tree = CACHE / f"ingest-tree-{args.events}"
    ensure_tree(tree, days, max(args.events // days, 10), seed=1)
    files = log_files(tree)
    gz_bytes = warm(files)
    workers = args.workers
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        listing = Path(scratch) / "files.txt"
        listing.write_text("\n".join(files))
        floor = measure("floor", [PYTHON, "-m", "bench.floor", str(listing), str(workers)])
        events, json_bytes = (int(x) for x in floor.output.split())
        lake = Path(scratch) / "lake"
        ingest = measure(
            "keytrail ingest",
            [PYTHON, "-m", "flows", "ingest", str(tree), "--lake", str(lake),
             "--workers", str(workers), "--json"],
        )  # fmt: skip
        written = json.loads(ingest.output)["events_written"]
        peers = []
        for mode in ("tuned",):
            out = Path(scratch) / f"duckdb-{mode}.parquet"
            peers.append(
                measure(
                    f"duckdb read_json ({mode})",
                    [PYTHON, "-m", "bench.duckdb_peer", str(listing), str(out), mode, str(workers)],
                )
            )
    rows = [floor, ingest, *peers]
    print()
    print(f"ingest: {len(files):,} log files, {events:,} events, {gz_bytes / 1e6:,.0f} MB gzip, "
          f"{json_bytes / 1e6:,.0f} MB JSON, {workers} worker(s) on {os.cpu_count()} core(s)")  # fmt: skip
    print(f"{'':28}{'seconds':>9}{'events/s':>12}{'MB/s JSON':>11}{'peak RSS MB':>13}")
    for row in rows:
        print(f"{row.name:28}{row.seconds:9.2f}{events / row.seconds:12,.0f}"
              f"{json_bytes / 1e6 / row.seconds:11,.0f}{row.peak_rss_mb:13,.0f}")  # fmt: skip
    ratio_floor = floor.seconds / ingest.seconds
    ratio_tuned = peers[0].seconds / ingest.seconds
    print(f"ingest / floor (speed): {ratio_floor:.2f}   ingest / DuckDB read_json: "
          f"{ratio_tuned:.2f}×   events written: {written:,}")  # fmt: skip
    return {
        "files": len(files), "events": events, "gzip_bytes": gz_bytes, "json_bytes": json_bytes,
        "workers": workers, "measures": [asdict(r) for r in rows],
        "ingest_vs_floor": ratio_floor, "ingest_vs_duckdb_tuned": ratio_tuned,
        "events_written": written,
    }  # fmt: skip


def bench_detect(args: argparse.Namespace) -> dict[str, object]:
    days, per_day = args.detect_days, args.detect_events_per_day
    tree = CACHE / f"detect-tree-{days}x{per_day}"
    ensure_tree(tree, days, per_day, seed=3)
    lake = CACHE / f"detect-lake-{days}x{per_day}"
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
    parser.add_argument("--detect-days", type=int, default=30)
    parser.add_argument("--detect-events-per-day", type=int, default=1_000_000)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-detect", action="store_true")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    results: dict[str, object] = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    if not args.skip_ingest:
        results["ingest"] = bench_ingest(args)
    if not args.skip_detect:
        results["detect"] = bench_detect(args)
    (CACHE / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {CACHE / 'results.json'}")


if __name__ == "__main__":
    main()
