"""Tasks only the benchmarks use; the benchmark's worker imports this module (FARPOOL_INCLUDE)."""

from __future__ import annotations

from benchmarks import work
from tasks import app

TINY = "benchmarks.bench_tasks.tiny"


@app.task(name=TINY)  # type: ignore[untyped-decorator]
def tiny(x: int) -> int:
    """About 10 µs of CPU, then x: the per-item cost of the imap workload."""
    return work.tiny(x)
