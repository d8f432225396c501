"""Run farpool's side of one workload in a loop, on the benchmark's local cluster, to profile it.

    python -m benchmarks.profile_loop map_square|imap_tiny|apply|map_chunksize_1 [SECONDS]

Prints the producer's and the worker's process ids on stderr once the cluster is warm, waits
two seconds, loops for SECONDS (20), then prints the iterations and the time per iteration.
Attach a sampling profiler meanwhile, for instance:

    py-spy record --pid PRODUCER --duration 15 --format raw -o producer.txt
    py-spy record --pid WORKER --subprocesses --duration 15 --format raw -o worker.txt
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import bench_tasks
from benchmarks.harness import Bench, local_bench
from benchmarks.workloads import cluster_warm_up
from tasks.examples import square

LOOPS = ("map_square", "imap_tiny", "apply", "map_chunksize_1")


def loops(bench: Bench) -> dict[str, Callable[[], Any]]:
    map_items = list(range(100_000))
    imap_items = list(range(20_000))
    chunk1_items = list(range(2_000))
    return {
        "map_square": lambda: bench.pool.map(square, map_items),
        "imap_tiny": lambda: list(bench.pool.imap(bench_tasks.tiny, imap_items)),
        "apply": lambda: bench.pool.apply(square, (3,)),
        "map_chunksize_1": lambda: bench.pool.map(square, chunk1_items, chunksize=1),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in LOOPS:
        print(__doc__, file=sys.stderr)
        return 2
    seconds = float(args[1]) if len(args) > 1 else 20.0
    with local_bench() as bench:
        cluster_warm_up(bench)
        run = loops(bench)[args[0]]
        run()
        pids = {"producer": os.getpid(), "worker": bench.cluster.worker.pid}
        print(json.dumps(pids), file=sys.stderr, flush=True)
        time.sleep(2)
        began = time.perf_counter()
        count = 0
        while time.perf_counter() - began < seconds:
            run()
            count += 1
        elapsed = time.perf_counter() - began
        print(json.dumps({"iterations": count, "seconds_per_iteration": elapsed / count}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
