"""`python -m benchmarks.concurrency`: map(burn) on a local worker with FARPOOL_CONCURRENCY=physical,
=logical and twice logical: which to pick for CPU-bound work on this machine.

`burn(ms)` spins for `ms` of wall-clock time and returns its loop count, so the work done is
the loops, not the items: loops per second over the whole map is the cluster's CPU throughput.
Processes that share a core each burn their milliseconds with fewer loops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from config import load_settings
from config.settings import core_count
from producer import Pool
from producer.local.cluster import LocalCluster
from producer.local.embedded import EmbeddedServer, ServerAddress, free_port
from tasks import create_app
from tasks.examples import burn


def serial_rate(milliseconds: float, items: int) -> float:
    """Loops per second of burn in this one process: one core's rate."""
    began = time.perf_counter()
    loops = sum(burn.run(milliseconds) for _ in range(items))
    return loops / (time.perf_counter() - began)


def measure(values: list[str], milliseconds: float, items: int, repeat: int) -> list[dict[str, Any]]:
    """Median wall time and loops per second of map(burn, items × ms, chunksize=1) for each
    FARPOOL_CONCURRENCY value: one worker each, on one server, timed in turns (round after
    round), so that a neighbour's load on a shared machine falls on every setting alike."""
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        server = EmbeddedServer(ServerAddress("127.0.0.1", free_port(), None), Path(data))
        server.start()
        stack.callback(server.stop)
        pools = []
        for value in values:
            settings = load_settings(
                broker_url=server.url,
                result_backend=server.url,
                concurrency=value,
                embedded_broker="never",
                data_dir=data,
                queue=f"farpool-bench-concurrency-{uuid.uuid4().hex[:6]}",
            )
            app = create_app(settings)
            stack.callback(app.close)
            stack.enter_context(LocalCluster(settings, app))
            pool = stack.enter_context(Pool(app=app))
            pool.map(burn, [1.0] * 4 * settings.concurrency, chunksize=1)  # every process warm
            pools.append((value, settings.concurrency, pool))
        seconds: dict[str, list[float]] = {value: [] for value in values}
        rates: dict[str, list[float]] = {value: [] for value in values}
        for _ in range(repeat):
            for value, _processes, pool in pools:
                began = time.perf_counter()
                loops = sum(pool.map(burn, [milliseconds] * items, chunksize=1))
                elapsed = time.perf_counter() - began
                seconds[value].append(elapsed)
                rates[value].append(loops / elapsed)
        return [
            {
                "concurrency": value,
                "processes": processes,
                "seconds": statistics.median(seconds[value]),
                "loops_per_second": statistics.median(rates[value]),
            }
            for value, processes, _pool in pools
        ]


def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__)
    cli.add_argument("--ms", type=float, default=20.0, help="milliseconds per burn item")
    cli.add_argument("--items", type=int, default=200, help="items per map")
    cli.add_argument("--repeat", type=int, default=3, help="timed maps per setting (medians)")
    options = cli.parse_args()
    physical, logical = core_count("physical"), core_count("logical")
    print(f"this machine: {physical} physical cores, {logical} logical CPUs")
    one_core = serial_rate(options.ms, max(10, options.items // 10))
    print(f"one process here: {one_core / 1e6:.2f} M loops/s")
    rows = measure(["physical", "logical", str(2 * logical)], options.ms, options.items, options.repeat)
    for row in rows:
        print(
            f"FARPOOL_CONCURRENCY={row['concurrency']:<9} {row['processes']} processes: "
            f"map(burn, {options.items} × {options.ms:g} ms) {row['seconds']:.2f} s, "
            f"{row['loops_per_second'] / 1e6:.2f} M loops/s "
            f"({row['loops_per_second'] / one_core:.2f} cores' worth)"
        )
    print(json.dumps({"physical": physical, "logical": logical, "one_process": one_core, "rows": rows}))


if __name__ == "__main__":
    main()
