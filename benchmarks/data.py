"""The data section (issue 19): NumPy arrays through a map, and one big value put once.

Side by side in one run with multiprocessing.Pool (which pickles each array into each task)
and, when it is installed, Ray (its Pool and `ray.put`); a Celery group cannot carry arrays.
"""

from __future__ import annotations

import importlib.util
import sys
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


_ray_figures: dict[str, float] = {}


def ray_note(key: str = "") -> str:
    if importlib.util.find_spec("ray") is None:
        return "Ray: not installed (pip install ray), not run"
    if key in _ray_figures:
        return f"Ray: {_ray_figures[key] * 1000:.0f} ms"
    return "Ray: installed, but its run failed (see stderr)"


def run_ray(processes: int, inputs: list[Any], value: Any, tasks: int, repeat: int) -> None:
    """Ray's figures for the same workloads, when it is installed: its Pool for the maps, `ray.put`
    and a remote function for the value sent once. Medians, as for the others."""
    if importlib.util.find_spec("ray") is None:
        return
    try:
        import ray
        from ray.util.multiprocessing import Pool as RayPool

        ray.init(num_cpus=processes, include_dashboard=False, log_to_driver=False)
        try:
            peek = ray.remote(bench_tasks.peek)
            with RayPool(processes) as pool:
                for key, function in (("data_total", bench_tasks.total), ("data_double", bench_tasks.double)):
                    pool.map(function, inputs)
                    samples = sample({"ray": lambda function=function: pool.map(function, inputs)}, repeat)
                    _ray_figures[key] = median(samples["ray"])

            def put_once() -> list[float]:
                handle = ray.put(value)
                return list(ray.get([peek.remote(handle) for _ in range(tasks)]))

            put_once()
            _ray_figures["data_put"] = median(sample({"ray": put_once}, repeat)["ray"])
        finally:
            ray.shutdown()
    except Exception as error:  # Ray is a comparison, not the subject: say so and go on
        print(f"\nRay's run failed: {type(error).__name__}: {error}", file=sys.stderr)


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
                notes=f"{what}; {rates}; {ray_note(key)}",
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
            f"task (pickled, 1 run); {ray_note('data_put')}",
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
    if sizes.name != "tiny":
        (value,) = arrays(1, PUT_MB)
        run_ray(bench.processes, arrays(ARRAYS, ARRAY_MB), value, PUT_TASKS, sizes.repeat)
    return [*map_arrays(bench, sizes), *put_once(bench, sizes)]
