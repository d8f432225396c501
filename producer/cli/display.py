"""What `farpool cluster` prints: one row per worker, its hardware, and what to watch for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from producer.local.cluster import WorkerInfo

HEADER = [
    "worker",
    "host",
    "pool",
    "processes",
    "cores phys/logical",
    "cpu",
    "cache L1d/L2/L3",
    "load (1/5/15 min)",
    "memory free/total",
    "running",
]


def running(functions: Iterable[str]) -> str:
    """`square (2), cube`: what the busy processes run; `-` when none is."""
    counts = Counter(functions)
    return ", ".join(f"{name} ({count})" if count > 1 else name for name, count in counts.items()) or "-"


def memory(available: int | None, total: int | None) -> str:
    if not total:
        return "?"
    return f"{(available or 0) / 2**30:.1f}/{total / 2**30:.1f} GiB"


def size(count: int | None) -> str:
    """A cache size as the kernel writes it: `32K`, `1M`, `32M`; `?` when unknown."""
    if not count:
        return "?"
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale}{unit}"
    return str(count)


def cores(worker: WorkerInfo) -> str:
    return f"{worker.physical_cores or '?'}/{worker.cores}"


def caches(worker: WorkerInfo) -> str:
    return "/".join(size(worker.caches.get(name)) for name in ("L1d", "L2", "L3"))


def row(worker: WorkerInfo) -> list[str]:
    return [
        worker.name,
        worker.host,
        worker.pool,
        str(worker.processes),
        cores(worker),
        worker.cpu_model or "?",
        caches(worker),
        " ".join(f"{x:.2f}" for x in worker.load),
        memory(worker.memory_available, worker.memory_total),
        running(worker.running),
    ]


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """The rows under the header, columns aligned."""
    lines = [header, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def oversubscribed(worker: WorkerInfo) -> str:
    """The note for a worker that runs more processes than its host has physical cores."""
    threads = "" if worker.cores == worker.physical_cores else f" ({worker.cores} hardware threads)"
    return (
        f"note: {worker.name} runs {worker.processes} processes on {worker.physical_cores} physical "
        f"cores{threads}: CPU-bound tasks share cores; FARPOOL_CONCURRENCY=physical gives one per core"
    )


def cluster_lines(workers: list[WorkerInfo]) -> list[str]:
    """The table, a line per oversubscribed worker, and the totals."""
    lines = table(HEADER, [row(worker) for worker in workers])
    lines += [oversubscribed(worker) for worker in workers if worker.oversubscribed]
    total = sum(worker.processes for worker in workers)
    return [*lines, f"{len(workers)} worker(s), {total} processes"]


def cluster_json(worker: WorkerInfo) -> dict[str, Any]:
    return {**worker.__dict__, "oversubscribed": worker.oversubscribed}
