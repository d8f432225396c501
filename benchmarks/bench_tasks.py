"""Tasks only the benchmarks use; the benchmark's worker imports this module (FARPOOL_INCLUDE)."""

from __future__ import annotations

from typing import Any

from benchmarks import work
from tasks import app

TINY = "benchmarks.bench_tasks.tiny"


@app.task(name=TINY)  # type: ignore[untyped-decorator]
def tiny(x: int) -> int:
    """About 10 µs of CPU, then x: the per-item cost of the imap workload."""
    return work.tiny(x)


# Plain functions for the data section (benchmarks/data.py): called by reference, and by
# multiprocessing's workers from the same module.
def total(array: Any) -> float:
    """One float back from a big array: what crosses is the argument."""
    return float(array.sum())


def double(array: Any) -> Any:
    """An array back as big as the argument: both directions cross."""
    return array * 2


def peek(array: Any) -> float:
    """Reads one element: what a put value's tasks cost beyond their own work."""
    return float(array[-1])
