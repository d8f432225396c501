"""`farpool advise` and `producer.advise()`: is a task worth distributing, and with what chunksize?

The seed's advice (know what is worth parallelizing), measured: the task's time per item
on a sample run here, what each item and its result cost to send (their size in farpool's JSON,
and the time to move them through the broker), the cluster's round trip, and the stdlib's cost
model of a map. The verdict names the dominant cost, and says when an item's working set (its
encoded size, a fair proxy) exceeds the workers' L2 cache (from their announcements).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Task

from producer.pool import Pool
from producer.sending.callables import task_name
from producer.sending.chunking import OVERHEAD_RATIO
from tasks.contract import dumps, is_reference
from tasks.payload import externalize

MAX_PAYLOAD = 1 << 62  # only measuring: the pool's own limit applies when the items are sent
PAYS_OFF = 1.2  # a speed-up below this is not worth a cluster
TRANSFER_ITEMS = 20_000  # items moved to time the transfer, at most...
TRANSFER_BYTES = 8 * 2**20  # ...and at most this many bytes of them (a large item: fewer)


@dataclass(frozen=True)
class Advice:
    """The figures behind the advice. Seconds per item unless named otherwise; sizes in bytes of
    farpool's JSON (tasks.contract.dumps), the largest of the sample's."""

    item_seconds: float  # computing one item, here
    transfer_seconds: float  # sending one item to a worker and its result back, no work
    round_trip: float  # one trivial task, through the broker and back
    processes: int
    items: int
    chunksize: int
    serial_seconds: float  # the whole map, here, in one process
    cluster_seconds: float  # the whole map on the cluster, by the cost model
    item_bytes: int = 0
    result_bytes: int = 0
    l2_bytes: int | None = None  # the smallest L2 cache among the workers; None: unknown

    @property
    def speedup(self) -> float:
        return self.serial_seconds / self.cluster_seconds

    @property
    def pays_off(self) -> bool:
        """Judged on the speed-up as printed (two decimals), so the verdict follows the figure."""
        return round(self.speedup, 2) >= PAYS_OFF

    @property
    def costs(self) -> dict[str, float]:
        """Seconds per item on the cluster: computing it, sending it and its result, its share of
        its chunk's round trip."""
        return {
            "compute": self.item_seconds,
            "sending": self.transfer_seconds,
            "round trips": self.round_trip / self.chunksize,
        }

    @property
    def dominant(self) -> str:
        """The largest cost per item: `compute`, `sending` or `round trips`."""
        costs = self.costs
        return max(costs, key=costs.__getitem__)

    @property
    def exceeds_l2(self) -> bool:
        """An item (or its result) is larger than the workers' L2 cache: it cannot stay in it."""
        return self.l2_bytes is not None and max(self.item_bytes, self.result_bytes) > self.l2_bytes

    @property
    def verdict(self) -> str:
        worth = f"{self.speedup:.2f}x; a cluster is worth it from {PAYS_OFF:.2f}x"
        if self.pays_off:
            return f"distributing pays off ({worth}); the dominant cost is {self.dominant}"
        why = {
            "compute": "the work is too little for the cluster's processes to share",
            "sending": "sending items and results costs more than computing them",
            "round trips": "the round trips eat the gain",
        }[self.dominant]
        return f"run it locally: {why} ({worth}); the dominant cost is {self.dominant}"


def plan(
    item_seconds: float,
    transfer_seconds: float,
    round_trip: float,
    processes: int,
    items: int,
    item_bytes: int = 0,
    result_bytes: int = 0,
    l2_bytes: int | None = None,
) -> Advice:
    """Chunks of ≈ OVERHEAD_RATIO round trips of work, at least one chunk per process.

    The cluster's time: one round trip, moving every item there and its result back (JSON,
    Redis), and each process's share of chunks, each costing its work plus a round trip.
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
        item_bytes,
        result_bytes,
        l2_bytes,
    )


def time_locally(
    call: Callable[[Any], object], sample: Sequence[Any], budget: float, results: list[Any] | None = None
) -> tuple[float, int]:
    """(median seconds per item, items run) of `call` over the sample, run in this process;
    it stops once `budget` seconds are spent (after one item at least). The results go to
    `results` if given."""
    durations: list[float] = []
    deadline = time.perf_counter() + budget
    for item in sample:
        began = time.perf_counter()
        value = call(item)
        durations.append(time.perf_counter() - began)
        if results is not None:
            results.append(value)
        if time.perf_counter() >= deadline:
            break
    return statistics.median(durations), len(durations)


def encoded_size(values: Sequence[Any]) -> int:
    """The largest of `values` as sent, in bytes: its JSON (UTF-8, what tasks.contract.dumps
    writes for it, less the brackets of the list it wraps a value in) and its arrays' bytes."""
    return max((_sent_size(value) for value in values), default=0)


def _sent_size(value: Any) -> int:
    value, refs = externalize(value, MAX_PAYLOAD, "a sample item")
    return len(dumps(value).encode()) - 2 + sum(ref.nbytes for ref in refs)


def transfer_time(pool: Pool, sample: Sequence[Any], items: int = TRANSFER_ITEMS) -> float:
    """Seconds per item to move items like the sample to the workers and back, with no work.
    Fewer items when they are large: at most TRANSFER_BYTES of them."""
    items = max(len(sample), min(items, TRANSFER_BYTES // max(1, encoded_size(sample))))
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


def smallest_l2(pool: Pool) -> int | None:
    """The smallest L2 cache the pool's workers announce (bytes); None if none says."""
    sizes = [worker.caches["L2"] for worker in pool.workers() if worker.caches.get("L2")]
    return min(sizes, default=None)


def local_callable(func: Any, pool: Pool) -> Callable[[Any], object]:
    """What to time here for `func`: a task's body, a registered name's, or the function itself."""
    if isinstance(func, Task):
        return func.run
    if isinstance(func, str):
        name = task_name(func, pool.app)
        if is_reference(name):
            raise ValueError(f"{name!r}: pass the function itself to advise, not its reference")
        return pool.app.tasks[name].run
    if callable(func):
        task_name(func, pool.app)  # TypeError now if it cannot travel
        return func  # type: ignore[no-any-return]
    raise TypeError(f"{func!r} is not callable: pass a function, a Celery task or a task's name")


def measure(func: Any, sample: Sequence[Any], items: int, budget: float, pool: Pool) -> tuple[Advice, int]:
    """(the advice, how many sample items ran here) for mapping `func` over `items` items."""
    if not sample:
        raise ValueError("advise needs at least one sample item")
    results: list[Any] = []
    item_seconds, ran = time_locally(local_callable(func, pool), sample, budget, results)
    used = list(sample[:ran])
    # identity moves a value there and back: half of each is one way, the item's or the result's
    transfer = (transfer_time(pool, used) + transfer_time(pool, results)) / 2
    advice = plan(
        item_seconds,
        transfer,
        round_trip(pool),
        pool.cluster_processes,
        items,
        encoded_size(used),
        encoded_size(results),
        smallest_l2(pool),
    )
    return advice, ran


def advise(
    func: Any, sample: Sequence[Any], items: int = 10_000, *, budget: float = 10.0, pool: Pool | None = None
) -> Advice:
    """Whether mapping `func` (a function, a Celery task or its name) over `items` items pays off.

    `func` runs here, in this process, on each sample item, for real (side effects included),
    until `budget` seconds are spent; then the cluster (`pool`'s, or a Pool() started for the
    measure) moves the sample and its results, and runs a few trivial tasks.
    """
    if pool is not None:
        return measure(func, sample, items, budget, pool)[0]
    with Pool() as own:
        return measure(func, sample, items, budget, own)[0]


def size(count: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def report(name: str, advice: Advice, ran: int) -> list[str]:
    """What `farpool advise` prints."""
    costs = advice.costs
    lines = [
        f"{name}: {advice.item_seconds * 1e3:.3f} ms per item (median of {ran} run here)",
        f"sending: an item {size(advice.item_bytes)}, its result {size(advice.result_bytes)} (JSON, largest "
        f"of the sample); {advice.transfer_seconds * 1e6:.1f} µs per item to send both",
        f"cluster: {advice.processes} processes, round trip {advice.round_trip * 1e3:.2f} ms",
        f"{advice.items:,} items: serial {advice.serial_seconds:.2f} s; on the cluster about "
        f"{advice.cluster_seconds:.2f} s with chunksize={advice.chunksize} (speed-up {advice.speedup:.2f}x)",
        "per item: " + ", ".join(f"{cost} {seconds * 1e6:.1f} µs" for cost, seconds in costs.items()),
    ]
    if advice.exceeds_l2 and advice.l2_bytes is not None:
        lines.append(
            f"working set: an item of {size(max(advice.item_bytes, advice.result_bytes))} exceeds the "
            f"workers' L2 cache ({size(advice.l2_bytes)}): expect memory-bound speed; smaller items "
            "(split the data) keep each process in its cache"
        )
    lines.append(f"advice: {advice.verdict}")
    return lines
