"""The benchmark's own local cluster, the pools under test, and timing helpers."""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import multiprocessing.pool
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import group

from config import Settings, load_settings, settings_env
from producer import Pool
from producer.local.cluster import LocalCluster
from producer.local.embedded import free_port
from producer.sending.chunking import default_chunksize
from tasks import create_app
from tasks.app import FarpoolCelery

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_TASKS = "benchmarks.bench_tasks"
MP_START_METHOD = "forkserver"  # the producer has threads (the result hub): never fork it


def cores() -> int:
    return os.cpu_count() or 1


@contextlib.contextmanager
def python_path(directory: Path) -> Iterator[None]:
    """`directory` first on PYTHONPATH while subprocesses are spawned (the worker imports benchmarks)."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(directory), *([before] if before else [])])
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


@dataclass
class Bench:
    """A running local cluster, a farpool Pool on it and a stdlib Pool of the same size."""

    settings: Settings
    app: FarpoolCelery
    pool: Pool
    mp_pool: multiprocessing.pool.Pool
    processes: int
    server_version: str
    data_dir: Path
    cluster: LocalCluster
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to join this cluster as a producer."""
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, **settings_env(self.settings), "PYTHONPATH": path}

    def celery_group_map(self, task: str, items: list[Any], chunksize: int | None = None) -> list[Any]:
        """The naive way: a group of farpool.map_chunk tasks, then GroupResult.get() as it comes."""
        size = chunksize or default_chunksize(len(items), self.processes)
        signatures = [
            self.app.signature("farpool.map_chunk", args=(task, items[start : start + size], start))
            for start in range(0, len(items), size)
        ]
        result = group(signatures, app=self.app).apply_async()
        chunks = result.get()
        self.forget([child.id for child in result.results])
        return [value for chunk in chunks for value in chunk]

    def celery_apply(self, task: str, args: tuple[Any, ...]) -> Any:
        """One task: send_task, then AsyncResult.get() with default arguments."""
        result = self.app.send_task(task, args=args)
        value = result.get()
        self.forget([result.id])
        return value

    def forget(self, task_ids: list[str]) -> None:
        keys = [self.app.backend.get_key_for_task(task_id) for task_id in task_ids]
        for start in range(0, len(keys), 10_000):
            self.app.backend.client.delete(*keys[start : start + 10_000])


def bench_settings(data_dir: Path, processes: int) -> Settings:
    port = free_port()
    return load_settings(
        broker_url=f"redis://127.0.0.1:{port}/0",
        result_backend=f"redis://127.0.0.1:{port}/1",
        queue=f"farpool-bench-{uuid.uuid4().hex[:8]}",
        concurrency=processes,
        embedded_broker="auto",
        data_dir=str(data_dir),
        include=(BENCH_TASKS,),
    )


@contextlib.contextmanager
def local_bench(processes: int | None = None) -> Iterator[Bench]:
    """Valkey on a free loopback port + one `celery -A tasks worker`, and both pools."""
    import benchmarks.bench_tasks  # noqa: F401  (registers the benchmark's tasks here too)

    processes = processes or cores()
    with tempfile.TemporaryDirectory(prefix="farpool-bench-", ignore_cleanup_errors=True) as tmp:
        data_dir = Path(tmp)
        settings = bench_settings(data_dir, processes)
        app = create_app(settings)
        cluster = LocalCluster(settings, app)
        try:
            with python_path(REPO_ROOT):
                cluster.start()
            info = app.backend.client.info("server")
            version = str(info.get("valkey_version") or info.get("redis_version") or "?")
            context = multiprocessing.get_context(MP_START_METHOD)
            with Pool(app=app) as pool, context.Pool(processes) as mp_pool:
                yield Bench(settings, app, pool, mp_pool, processes, version, data_dir, cluster)
        except BaseException:
            log = data_dir / "local-cluster.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-20:]
                print("benchmarks: local cluster log (last lines):", *tail, sep="\n  ", file=sys.stderr)
            raise
        finally:
            cluster.stop()
            app.backend.client.connection_pool.disconnect()
            app.close()


# -- timing ------------------------------------------------------------------------------------

Run = Callable[[], Any]
Check = Callable[[str, Any], None]


def sample(
    runs: dict[str, Run], repeat: int, check: Check | None = None, collect: bool = True
) -> dict[str, list[float]]:
    """Seconds per run of each callable, `repeat` times, interleaved so that drift hits all alike.

    `check(name, result)` sees each callable's first result: a wrong answer is not a benchmark.
    `collect`: a full garbage collection before each run (not for runs of a millisecond).
    """
    samples: dict[str, list[float]] = {name: [] for name in runs}
    gc.collect()
    for round_ in range(repeat):
        for name, run in runs.items():
            if collect:
                gc.collect()
            began = time.perf_counter()
            result = run()
            samples[name].append(time.perf_counter() - began)
            if round_ == 0 and check is not None:
                check(name, result)
            del result
    return samples


def warm_up(runs: dict[str, Run], check: Check | None = None) -> None:
    """Run each once, untimed (connections, subscriptions, imports, caches)."""
    for name, run in runs.items():
        result = run()
        if check is not None:
            check(name, result)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def equal_to(expected: object) -> Check:
    """A check that each implementation computed `expected`."""

    def check(name: str, got: object) -> None:
        if got != expected:
            raise AssertionError(f"{name} computed a wrong result")

    return check
