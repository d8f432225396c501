"""`farpool advise`: is a task worth distributing, and with what chunksize?

The seed's advice (know what is worth parallelizing), measured: the task's time per item
on a sample run here, the cluster's round trip, and the stdlib's cost model of a map.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from producer.pool import Pool

OVERHEAD_RATIO = 20  # as imap's sizer: a chunk's work ≈ 20 round trips, so overhead ≤ 5 %
PAYS_OFF = 1.2  # a speed-up below this is not worth a cluster


@dataclass(frozen=True)
class Advice:
    item_seconds: float
    transfer_seconds: float
    round_trip: float
    processes: int
    items: int
    chunksize: int
    serial_seconds: float
    cluster_seconds: float

    @property
    def speedup(self) -> float:
        return self.serial_seconds / self.cluster_seconds

    @property
    def pays_off(self) -> bool:
        """Judged on the speed-up as printed (two decimals), so the verdict follows the figure."""
        return round(self.speedup, 2) >= PAYS_OFF


def plan(
    item_seconds: float, transfer_seconds: float, round_trip: float, processes: int, items: int
) -> Advice:
    """Chunks of ≈ OVERHEAD_RATIO round trips of work, at least one chunk per process.

    The cluster's time: one round trip, moving every item there and back (JSON, Redis),
    and each process's share of chunks, each costing its work plus a round trip.
    """
    per_process = math.ceil(items / processes)
    ideal = math.ceil(OVERHEAD_RATIO * round_trip / max(item_seconds, 1e-9))
    chunksize = max(1, min(ideal, per_process))
    chunks_per_process = math.ceil(per_process / chunksize)
    work = chunks_per_process * (chunksize * item_seconds + round_trip)
    cluster = round_trip + items * transfer_seconds + work
    return Advice(
        item_seconds,
        transfer_seconds,
        round_trip,
        processes,
        items,
        chunksize,
        items * item_seconds,
        cluster,
    )


def time_locally(call: Callable[[Any], object], sample: Sequence[Any], budget: float) -> tuple[float, int]:
    """(median seconds per item, items run) of `call` over the sample, run in this process;
    it stops once `budget` seconds are spent (after one item at least)."""
    durations: list[float] = []
    deadline = time.perf_counter() + budget
    for item in sample:
        began = time.perf_counter()
        call(item)
        durations.append(time.perf_counter() - began)
        if time.perf_counter() >= deadline:
            break
    return statistics.median(durations), len(durations)


def transfer_time(pool: Pool, sample: Sequence[Any], items: int = 20_000) -> float:
    """Seconds per item to move items like the sample to the workers and back, with no work."""
    repeated = [sample[n % len(sample)] for n in range(items)]
    chunksize = math.ceil(items / pool.cluster_processes)
    began = time.perf_counter()
    pool.map("tasks.examples.identity", repeated, chunksize)
    return (time.perf_counter() - began) / items


def round_trip(pool: Pool, calls: int = 15) -> float:
    """Median seconds for one trivial task through the broker and back."""
    durations = []
    for n in range(calls):
        began = time.perf_counter()
        pool.apply("tasks.examples.square", (n,))
        durations.append(time.perf_counter() - began)
    return statistics.median(durations)
