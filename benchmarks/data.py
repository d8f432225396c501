"""The data section (issue 19): NumPy arrays through a map, and one big value put once.

Side by side in one run with multiprocessing.Pool (which pickles each array into each task)
and, when it is installed, Ray (its Pool and `ray.put`); a Celery group cannot carry arrays.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from benchmarks import bench_tasks
from benchmarks.figures import Figure, Goal
from benchmarks.harness import Bench, median, sample, warm_up

ARRAYS = 16
ARRAY_MB = 8
PUT_MB = 64
PUT_TASKS = 64


def arrays(count: int, megabytes: float) -> list[Any]:
    rng = np.random.default_rng(19)
    return [rng.random(int(megabytes * 1024 * 1024 // 8)) for _ in range(count)]


def sums(values: list[Any]) -> list[float]:
    return [float(value.sum()) for value in values]


def server_traffic(bench: Bench) -> int:
    """Bytes in and out of the bench's broker so far."""
    stats = bench.app.backend.client.info("stats")
    return int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])


def ray_note() -> str:
    if importlib.util.find_spec("ray") is None:
        return "Ray: not installed (pip install ray), not run"
    return "Ray: installed, but not run by this bench yet"


def map_arrays(bench: Bench, sizes: Any) -> list[Figure]:
    count = ARRAYS if sizes.name != "tiny" else 4
    megabytes = ARRAY_MB if sizes.name != "tiny" else 1
    inputs = arrays(count, megabytes)
    expected = sums(inputs)
    total_mb = count * megabytes

    def check_sums(name: str, got: Any) -> None:
        if got != expected:
            raise AssertionError(f"{name} computed a wrong result")

    def check_doubles(name: str, got: Any) -> None:
        if len(got) != count or any(not np.array_equal(a * 2, b) for a, b in zip(inputs, got, strict=True)):
            raise AssertionError(f"{name} computed a wrong result")

    figures = []
    for key, function, check, what in (
        ("data_total", bench_tasks.total, check_sums, "one float back each"),
        ("data_double", bench_tasks.double, check_doubles, "arrays back"),
    ):
        runs = {
            "farpool": lambda function=function: bench.pool.map(function, inputs),
            "multiprocessing": lambda function=function: bench.mp_pool.map(function, inputs),
        }
        warm_up(runs, check)
        samples = sample(runs, sizes.repeat, check)
        wall = {name: median(values) for name, values in samples.items()}
        crossing = total_mb * (2 if key == "data_double" else 1)
        rates = ", ".join(f"{name} {crossing / seconds:,.0f} MB/s" for name, seconds in wall.items())
        figures.append(
            Figure.measured(
                key,
                f"map({function.__name__}, {count} arrays × {megabytes} MB)",
                "wall time",
                "s",
                wall,
                goal=Goal("ratio", "<=", 1.0),
                notes=f"{what}; {rates}; {ray_note()}",
                samples=samples,
            )
        )
    return figures


def put_once(bench: Bench, sizes: Any) -> list[Figure]:
    megabytes = PUT_MB if sizes.name != "tiny" else 4
    tasks = PUT_TASKS if sizes.name != "tiny" else 8
    (value,) = arrays(1, megabytes)
    expected = [float(value[-1])] * tasks

    def farpool() -> list[float]:
        handle = bench.pool.put(value)
        try:
            return bench.pool.map(bench_tasks.peek, [handle] * tasks, chunksize=1)
        finally:
            handle.delete()

    def check(name: str, got: Any) -> None:
        if got != expected:
            raise AssertionError(f"{name} computed a wrong result")

    warm_up({"farpool": farpool}, check)
    before = server_traffic(bench)
    samples = sample({"farpool": farpool}, sizes.repeat, check)
    broker_mb = (server_traffic(bench) - before) / sizes.repeat / 1024 / 1024
    # multiprocessing pickles the value into every task: one run is enough to make the point
    mp_samples = sample(
        {"multiprocessing": lambda: bench.mp_pool.map(bench_tasks.peek, [value] * tasks, chunksize=1)},
        1,
        check,
    )
    samples.update(mp_samples)
    wall = {name: median(values) for name, values in samples.items()}
    workload = f"put({megabytes} MB) once + map(peek, [handle] × {tasks})"
    return [
        Figure.measured(
            "data_put",
            workload,
            "wall time",
            "s",
            wall,
            goal=Goal("farpool", "<=", 0.5),
            notes="each task reads the array's last element; multiprocessing passes the array to each "
            f"task (pickled, 1 run); {ray_note()}",
            samples=samples,
        ),
        Figure.measured(
            "data_put_broker",
            workload,
            "broker traffic / input size",
            "",
            {"farpool": broker_mb / megabytes},
            goal=Goal("farpool", "<=", 4.0),
            notes=f"{broker_mb:.1f} MB in and out of the broker per run (same host: the array stays in "
            "memory)",
        ),
    ]


def data_section(bench: Bench, sizes: Any) -> list[Figure]:
    return [*map_arrays(bench, sizes), *put_once(bench, sizes)]
