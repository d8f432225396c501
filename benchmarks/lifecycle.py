"""Workloads of a pool's life: its start, one CLI call, map_async at scale, terminate() of a backlog."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import work
from benchmarks.figures import Figure, Goal
from benchmarks.harness import MP_START_METHOD, Bench, equal_to, median, sample, warm_up
from producer import Pool
from producer.local.embedded import free_port
from tasks import create_app
from tasks.examples import square

if TYPE_CHECKING:
    from benchmarks.workloads import Sizes

SQUARE = "tasks.examples.square"
FARPOOL_CLI = str(Path(sys.executable).with_name("farpool"))
SEED_SCRIPT = Path(__file__).resolve().parent.parent / "producer" / "demo" / "pool_multiprocessing.py"
STDLIB_APPLY = "import multiprocessing as m; p = m.Pool(1); print(p.apply(abs, (-3,))); p.terminate()"


def pool_ready(bench: Bench, sizes: Sizes) -> list[Figure]:
    """Pool() with a worker already online, from a fresh app, until it can take a call."""

    def farpool() -> None:
        app = create_app(bench.settings)
        Pool(app=app).terminate()
        app.close()

    def stdlib() -> None:
        multiprocessing.get_context(MP_START_METHOD).Pool(bench.processes).terminate()

    runs = {"farpool": farpool, "multiprocessing": stdlib}
    warm_up(runs)
    samples = sample(runs, max(3, sizes.repeat), collect=False)
    return [
        Figure.measured(
            "pool_ready",
            "Pool(), a worker already online",
            "time to ready",
            "s",
            {name: median(values) for name, values in samples.items()},
            goal=Goal("farpool", "<=", 0.050),
            notes="farpool: a fresh app, Pool(), terminate(); multiprocessing: Pool(n), terminate()",
            samples=samples,
        )
    ]


def cli_apply(bench: Bench, sizes: Sizes) -> list[Figure]:
    """`farpool apply tasks.examples.square 3`: the whole command, interpreter start included."""

    def run(command: list[str]) -> Any:
        done = subprocess.run(command, env=bench.env, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-500:]}")
        return int(done.stdout.strip())

    runs = {
        "farpool": lambda: run([FARPOOL_CLI, "apply", SQUARE, "3"]),
        "multiprocessing": lambda: run([sys.executable, "-c", STDLIB_APPLY]),
    }
    check = equal_to(9)

    def stdlib_check(name: str, got: Any) -> None:
        check(name, 9 if name == "multiprocessing" and got == 3 else got)

    warm_up(runs, stdlib_check)
    samples = sample(runs, max(3, sizes.repeat), stdlib_check, collect=False)
    return [
        Figure.measured(
            "cli_apply",
            f"farpool apply {SQUARE} 3",
            "whole command",
            "s",
            {name: median(values) for name, values in samples.items()},
            goal=Goal("farpool", "<=", 0.5),
            notes="cluster up; multiprocessing: python -c 'Pool(1).apply(abs, (-3,))'",
            samples=samples,
        )
    ]


def seed_script(bench: Bench, sizes: Sizes) -> list[Figure]:
    """The seed's script as a user runs it, `python pool_multiprocessing.py` with nothing set and
    nothing running: its pool starts its own broker and worker, maps, and stops them."""
    farpool_import, stdlib_import = "from producer import Pool", "from multiprocessing import Pool"
    stdlib_source = SEED_SCRIPT.read_text().replace(farpool_import, stdlib_import, 1)

    def run(command: list[str]) -> Any:
        with tempfile.TemporaryDirectory(prefix="farpool-seed-") as data:
            env = {name: value for name, value in os.environ.items() if not name.startswith("FARPOOL_")}
            env.update(FARPOOL_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0", FARPOOL_DATA_DIR=data)
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the seed's script failed ({done.returncode}): {done.stderr[-500:]}")
        return done.stdout.splitlines()[-1]

    runs = {
        "farpool": lambda: run([sys.executable, str(SEED_SCRIPT)]),
        "multiprocessing": lambda: run([sys.executable, "-c", stdlib_source]),
    }
    check = equal_to("Result: " + str([x * x for x in range(1, 15)]))
    warm_up(runs, check)
    samples = sample(runs, max(5, sizes.repeat), check, collect=False)
    return [
        Figure.measured(
            "seed_script",
            "python pool_multiprocessing.py (the seed's script), nothing running",
            "whole script",
            "s",
            {name: median(values) for name, values in samples.items()},
            goal=Goal("farpool", "<=", 2.5),
            notes="farpool: its own broker and worker started and stopped; multiprocessing: the same "
            "script with `from multiprocessing import Pool`",
            samples=samples,
        )
    ]


def map_async_at_scale(bench: Bench, sizes: Sizes) -> list[Figure]:
    """map_async(square, range(n), chunksize=1): the time to return, then until get() returns."""
    items = list(range(sizes.chunk1_items))
    expected = [x * x for x in items]
    sends: dict[str, list[float]] = {"farpool": [], "multiprocessing": []}

    def timed_map_async(name: str, pool: Any, function: Any) -> list[int]:
        began = time.perf_counter()
        result = pool.map_async(function, items, chunksize=1)
        sends[name].append(time.perf_counter() - began)
        return list(result.get(timeout=600))

    runs = {
        "farpool": lambda: timed_map_async("farpool", bench.pool, square),
        "multiprocessing": lambda: timed_map_async("multiprocessing", bench.mp_pool, work.square),
        "celery": lambda: bench.celery_group_map(SQUARE, items, chunksize=1),
        "farpool map": lambda: bench.pool.map(square, items, chunksize=1),
    }
    repeat = min(sizes.repeat, 2)
    samples = sample(runs, repeat, equal_to(expected))
    baseline = median(samples.pop("farpool map"))
    totals = {name: median(values) for name, values in samples.items()}
    sent = {name: median(values[-repeat:]) for name, values in sends.items()}
    workload = f"map_async(square, range({sizes.chunk1_items:_}), chunksize=1)"
    return [
        Figure.measured(
            "map_async_send",
            workload,
            "time to return",
            "s",
            sent,
            goal=Goal("farpool", "<=", 0.5),
            notes="the call alone: chunks sent, nothing awaited",
            samples={name: values[-repeat:] for name, values in sends.items()},
        ),
        Figure.measured(
            "map_async_total",
            workload,
            "until get() returns",
            "s",
            totals,
            goal=Goal("baseline", "<=", 1.25, "farpool map"),
            notes=f"farpool map of the same: {baseline * 1000:.0f} ms; celery: a group of one-item chunks",
            samples=samples,
            details={"baseline": baseline},
        ),
    ]


def terminate_backlog(bench: Bench, sizes: Sizes) -> list[Figure]:
    """terminate() right after map_async of a backlog of one-item chunks: until the queue is clear."""
    client: Any = bench.app.backend.client
    queue = bench.settings.queue
    clear_after: list[float] = []
    calls: list[float] = []
    for _ in range(min(sizes.repeat, 3)):
        pool = Pool(app=bench.app)
        pool.map_async(square, range(sizes.terminate_chunks), chunksize=1)
        began = time.perf_counter()
        pool.terminate()
        returned = time.perf_counter()
        while client.llen(queue):
            time.sleep(0.01)
        calls.append(returned - began)
        clear_after.append(time.perf_counter() - returned)
        pool.join()
    # the workers are idle again before the next workload: they answer a map at once
    bench.pool.map(square, range(8), chunksize=1)
    return [
        Figure.measured(
            "terminate_clear",
            f"terminate() after map_async of {sizes.terminate_chunks:_} one-item chunks",
            "queue clear after terminate() returns",
            "s",
            {"farpool": median(clear_after)},
            goal=Goal("farpool", "<=", 2.0),
            notes=f"terminate() itself {statistics.median(calls) * 1000:.0f} ms",
            samples={"farpool": clear_after},
        )
    ]
