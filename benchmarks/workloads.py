"""The workloads of DESIGN §6 (and benchmarks/lifecycle.py's), each run on farpool, multiprocessing.Pool
and a Celery group where it applies."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from benchmarks import bench_tasks, data, lifecycle, work
from benchmarks.figures import Figure, Goal
from benchmarks.harness import Bench, equal_to, median, percentile, sample, warm_up
from tasks.examples import burn, square

SQUARE = "tasks.examples.square"
BURN = "tasks.examples.burn"
STREAM_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Sizes:
    """How big each workload is, and how many timed repetitions (medians are reported)."""

    name: str
    map_items: int = 100_000
    burn_items: int = 40
    burn_ms: float = 6.0
    imap_items: int = 20_000
    apply_calls: int = 300
    chunk1_items: int = 5_000
    terminate_chunks: int = 10_000
    stream_items: int = 10_000_000
    # multiprocessing's imap_unordered with its default chunksize=1 does ~10⁴–10⁵ items/s:
    # its side of the stream runs on a prefix, enough for a stable rate and RSS.
    stream_mp_items: int = 200_000
    repeat: int = 5


FULL = Sizes("full")
QUICK = Sizes("quick", stream_items=200_000, stream_mp_items=50_000, repeat=3)
TINY = Sizes(
    "tiny",
    map_items=2_000,
    burn_items=8,
    burn_ms=2.0,
    imap_items=400,
    apply_calls=20,
    chunk1_items=200,
    terminate_chunks=200,
    stream_items=5_000,
    stream_mp_items=2_000,
    repeat=1,
)
SIZES = {sizes.name: sizes for sizes in (FULL, QUICK, TINY)}

Workload = Callable[[Bench, Sizes], list[Figure]]


def cluster_warm_up(bench: Bench) -> None:
    """Connections, pub/sub subscriptions and the workers' first tasks, before any timing."""
    items = list(range(64))
    warm_up(
        {
            "farpool": lambda: bench.pool.map(square, items, chunksize=8),
            "multiprocessing": lambda: bench.mp_pool.map(work.square, items, chunksize=8),
            "celery": lambda: bench.celery_group_map(SQUARE, items, chunksize=8),
        },
        equal_to([x * x for x in items]),
    )
    for _ in range(3):
        bench.pool.apply(square, (3,))
        bench.celery_apply(SQUARE, (3,))


def walls(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: median(values) for name, values in samples.items()}


# -- 1 ------------------------------------------------------------------------------------------


def map_square(bench: Bench, sizes: Sizes) -> list[Figure]:
    items = list(range(sizes.map_items))
    runs = {
        "farpool": lambda: bench.pool.map(square, items),
        "multiprocessing": lambda: bench.mp_pool.map(work.square, items),
        "celery": lambda: bench.celery_group_map(SQUARE, items),
    }
    check = equal_to([x * x for x in items])
    warm_up(runs, check)
    samples = sample(runs, sizes.repeat, check)
    wall = walls(samples)
    return [
        Figure.measured(
            "map_square",
            f"map(square, range({sizes.map_items:_}))",
            "wall time",
            "s",
            wall,
            goal=Goal("ratio", "<=", 3.0),
            notes="default chunksize",
            samples=samples,
        )
    ]


# -- 2 ------------------------------------------------------------------------------------------


def map_burn(bench: Bench, sizes: Sizes) -> list[Figure]:
    items = [sizes.burn_ms] * sizes.burn_items
    runs = {
        "farpool": lambda: bench.pool.map(burn, items),
        "multiprocessing": lambda: bench.mp_pool.map(work.burn, items),
        "celery": lambda: bench.celery_group_map(BURN, items),
    }

    def check(name: str, got: Any) -> None:
        if len(got) != len(items) or not all(isinstance(count, int) and count > 0 for count in got):
            raise AssertionError(f"{name} computed a wrong result")

    warm_up(runs, check)
    samples = sample({**runs, "serial": lambda: [work.burn(ms) for ms in items]}, sizes.repeat, check)
    serial = median(samples.pop("serial"))
    wall = walls(samples)
    workload = f"map(burn, {sizes.burn_items} × {sizes.burn_ms:g} ms)"
    efficiency = {name: serial / (bench.processes * seconds) for name, seconds in wall.items()}
    return [
        Figure.measured(
            "map_burn",
            workload,
            "wall time",
            "s",
            wall,
            goal=Goal("ratio", "<=", 1.05),
            notes=f"serial {serial:.3f} s",
            samples=samples,
            details={"serial_seconds": serial},
        ),
        Figure.measured(
            "map_burn_efficiency",
            workload,
            "efficiency",
            "",
            efficiency,
            notes=f"serial / ({bench.processes} × wall)",
        ),
    ]


# -- 3 ------------------------------------------------------------------------------------------


def imap_tiny(bench: Bench, sizes: Sizes) -> list[Figure]:
    items = list(range(sizes.imap_items))
    runs = {
        "farpool": lambda: list(bench.pool.imap(bench_tasks.tiny, items)),
        "multiprocessing": lambda: list(bench.mp_pool.imap(work.tiny, items)),
        "celery": lambda: bench.celery_group_map(bench_tasks.TINY, items),
    }
    check = equal_to(items)
    warm_up(runs, check)
    samples = sample({**runs, "serial": lambda: [work.tiny(x) for x in items]}, sizes.repeat, check)
    serial = median(samples.pop("serial"))
    return [
        Figure.measured(
            "imap_tiny",
            f"imap(tiny, {sizes.imap_items:_} × 10 µs)",
            "wall time",
            "s",
            walls(samples),
            goal=Goal("ratio", "<=", 1.0),
            notes=f"default arguments (stdlib chunksize=1, farpool adaptive); serial {serial:.3f} s; "
            "celery: group, map's default chunks",
            samples=samples,
            details={"serial_seconds": serial},
        )
    ]


# -- 4 ------------------------------------------------------------------------------------------


def apply_latency(bench: Bench, sizes: Sizes) -> list[Figure]:
    runs = {
        "farpool": lambda: bench.pool.apply(square, (3,)),
        "multiprocessing": lambda: bench.mp_pool.apply(work.square, (3,)),
        "celery": lambda: bench.celery_apply(SQUARE, (3,)),
    }
    check = equal_to(9)
    for _ in range(max(3, sizes.apply_calls // 10)):
        warm_up(runs, check)
    seconds = sample(runs, sizes.apply_calls, check, collect=False)
    samples = {name: [value * 1000 for value in values] for name, values in seconds.items()}
    p50 = {name: percentile(values, 0.50) for name, values in samples.items()}
    p99 = {name: percentile(values, 0.99) for name, values in samples.items()}
    workload = f"apply(square, (3,)) × {sizes.apply_calls}"
    return [
        Figure.measured(
            "apply_p50",
            workload,
            "p50 latency",
            "ms",
            p50,
            goal=Goal("farpool", "<=", 1.8),
            samples=samples,
        ),
        Figure.measured("apply_p99", workload, "p99 latency", "ms", p99),
    ]


# -- 5 ------------------------------------------------------------------------------------------


def map_chunksize_1(bench: Bench, sizes: Sizes) -> list[Figure]:
    items = list(range(sizes.chunk1_items))
    runs = {
        "farpool": lambda: bench.pool.map(square, items, chunksize=1),
        "multiprocessing": lambda: bench.mp_pool.map(work.square, items, chunksize=1),
        "celery": lambda: bench.celery_group_map(SQUARE, items, chunksize=1),
    }
    warm_items = items[: max(1, len(items) // 20)]
    warm_up(
        {
            "farpool": lambda: bench.pool.map(square, warm_items, chunksize=1),
            "multiprocessing": lambda: bench.mp_pool.map(work.square, warm_items, chunksize=1),
            "celery": lambda: bench.celery_group_map(SQUARE, warm_items, chunksize=1),
        }
    )
    samples = sample(runs, min(sizes.repeat, 3), equal_to([x * x for x in items]))
    rate = {name: len(items) / seconds for name, seconds in walls(samples).items()}
    return [
        Figure.measured(
            "map_chunksize_1",
            f"map(square, range({sizes.chunk1_items:_}), chunksize=1)",
            "tasks per second",
            "tasks/s",
            rate,
            goal=Goal("farpool", ">=", 1000),
            notes="celery: a group of one-item chunks",
            samples=samples,
        )
    ]


# -- 6 ------------------------------------------------------------------------------------------


def stream_probe(bench: Bench, kind: str, count: int) -> dict[str, Any]:
    """Run benchmarks.stream_probe in a fresh interpreter and return its JSON report."""
    probe = [sys.executable, "-m", "benchmarks.stream_probe", kind, str(count), str(bench.processes)]
    if kind == "farpool":
        probe = probe[:-1]
    # Linux carries ru_maxrss across exec: a child exec'd straight from this process would report
    # at least this process's RSS. A shell that forks the probe gives it a fresh count.
    command = ["sh", "-c", '"$@"; exit $?', "sh", *probe]
    began = time.perf_counter()
    done = subprocess.run(
        command, env=bench.env, capture_output=True, text=True, timeout=STREAM_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"stream probe ({kind}) failed with code {done.returncode}:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["process_seconds"] = time.perf_counter() - began
    return report


def imap_unordered_stream(bench: Bench, sizes: Sizes) -> list[Figure]:
    farpool = stream_probe(bench, "farpool", sizes.stream_items)
    stdlib = stream_probe(bench, "multiprocessing", min(sizes.stream_mp_items, sizes.stream_items))
    workload = f"imap_unordered(square, {sizes.stream_items:_}-item generator)"
    notes = f"one run each, fresh process; multiprocessing: first {stdlib['items']:_} items, chunksize=1"
    details = {"farpool": farpool, "multiprocessing": stdlib}
    return [
        Figure(
            "stream_peak_rss",
            workload,
            "producer peak RSS",
            "MB",
            farpool["peak_rss_mb"],
            stdlib["peak_rss_mb"],
            goal=Goal("farpool", "<=", 150),
            notes=f"{notes}; RSS before the loop {farpool['baseline_rss_mb']:.0f} MB",
            details=details,
        ),
        Figure(
            "stream_rate",
            workload,
            "items per second",
            "items/s",
            farpool["items_per_second"],
            stdlib["items_per_second"],
            notes=f"farpool {farpool['seconds']:.1f} s for {farpool['items']:_} items",
            samples={"farpool": [farpool["seconds"]], "multiprocessing": [stdlib["seconds"]]},
        ),
    ]


WORKLOADS: dict[str, Workload] = {
    "pool_ready": lifecycle.pool_ready,
    "cli_apply": lifecycle.cli_apply,
    "seed_script": lifecycle.seed_script,
    "map_square": map_square,
    "map_burn": map_burn,
    "imap_tiny": imap_tiny,
    "apply": apply_latency,
    "map_chunksize_1": map_chunksize_1,
    "map_async": lifecycle.map_async_at_scale,
    "terminate": lifecycle.terminate_backlog,
    "imap_unordered_stream": imap_unordered_stream,
    "data": data.data_section,
}


def scaled(sizes: Sizes, repeat: int | None = None, stream_items: int | None = None) -> Sizes:
    """`sizes` with the repetitions and the stream's length given on the command line."""
    if repeat is not None:
        sizes = replace(sizes, repeat=repeat)
    if stream_items is not None:
        sizes = replace(sizes, stream_items=stream_items)
    return sizes
