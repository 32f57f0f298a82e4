"""``python -m bench.runners TREE LAKE RUNNER N``: ingest TREE through the driver's read tasks on
a given runner, the way the nightly flow fans them out, without Prefect's own orchestration.

``threads``: N threads of this process (the flow's default runner). ``dask``: a local Dask
cluster of N single-threaded worker processes, started and stopped inside the measured time as
``--task-runner dask`` does. Prints the events written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analytics.adapters.lake import LocalLake
from analytics.adapters.sources import LocalSource
from analytics.ingest.pipeline import IngestOptions, Partition, StagedPartition, ingest

Read = Callable[[Partition], StagedPartition]


def in_threads(threads: int) -> Callable[[Read, list[Partition]], Iterator[StagedPartition]]:
    def mapper(read: Read, partitions: list[Partition]) -> Iterator[StagedPartition]:
        with ThreadPoolExecutor(threads) as pool:
            yield from pool.map(read, partitions)

    return mapper


def on_dask(workers: int) -> Callable[[Read, list[Partition]], Iterator[StagedPartition]]:
    def mapper(read: Read, partitions: list[Partition]) -> Iterator[StagedPartition]:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                               dashboard_address=None)  # fmt: skip
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            futures = client.map(read, partitions, pure=False)
            for future in futures:
                yield future.result()

    return mapper


def main() -> None:
    tree, lake, runner, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    mapper = in_threads(count) if runner == "threads" else on_dask(count)
    options = IngestOptions(workers=1)
    summary = ingest(LocalSource(Path(tree)), LocalLake(Path(lake)), options, mapper=mapper)
    print(summary.events_written)


if __name__ == "__main__":
    main()
