"""The per-task floor, side by side: farpool's consume path, kombu's stock Redis transport (the
part it replaces), plain Celery on RabbitMQ, and multiprocessing.Pool.

    python -m benchmarks.consume [--processes N] [--output DIR]      (part of make bench)

Each Celery side runs one `celery worker` with N prefork processes (events off, acks late,
prefetch 1) on a broker of its own: the bundled Valkey for farpool and kombu; the machine's
RabbitMQ on 127.0.0.1:5672 when one answers there (skipped, with a note, otherwise), its results
in Valkey. Figures: apply p50/p99 (ms), map(square, range(2000), chunksize=1) in tasks/s, and
how long map_async of 5,000 one-item chunks takes to return (the sending) and to finish.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    MP_START_METHOD,
    REPO_ROOT,
    cores,
    free_port,
    median,
    percentile,
    python_path,
)
from tasks.examples import square

RABBITMQ = ("127.0.0.1", 5672)
APPLY_CALLS = 300
CHUNK1_ITEMS = 2_000
ASYNC_CHUNKS = 5_000
REPEAT = 3
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"
Row = dict[str, float | str | None]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def measure(
    apply: Callable[[], Any],
    map_1: Callable[[list[int]], Any],
    map_async: Callable[[list[int]], Callable[[], Any]],
) -> Row:
    """The three figures for one side; `map_async(items)` sends and returns a `get`."""
    for _ in range(20):
        apply()
    latencies = [timed(apply)[0] * 1000 for _ in range(APPLY_CALLS)]
    items = list(range(CHUNK1_ITEMS))
    map_1(items[:200])
    rates = []
    for _ in range(REPEAT):
        seconds, got = timed(lambda: map_1(items))
        assert list(got) == [x * x for x in items], "a wrong answer is not a benchmark"
        rates.append(len(items) / seconds)
    sends, totals = [], []
    chunks = list(range(ASYNC_CHUNKS))
    for _ in range(REPEAT):
        began = time.perf_counter()
        get = map_async(chunks)
        sends.append(time.perf_counter() - began)
        assert list(get()) == [x * x for x in chunks]
        totals.append(time.perf_counter() - began)
    return {
        "apply_p50_ms": percentile(latencies, 0.5),
        "apply_p99_ms": percentile(latencies, 0.99),
        "chunksize_1_tasks_per_s": median(rates),
        "map_async_5000_returns_s": median(sends),
        "map_async_5000_done_s": median(totals),
    }


def farpool_side(consume_path: str, processes: int) -> Row:
    from config import load_settings
    from producer import Pool
    from producer.local.cluster import LocalCluster
    from tasks import create_app

    with tempfile.TemporaryDirectory(prefix="farpool-consume-", ignore_cleanup_errors=True) as tmp:
        port = free_port()
        settings = load_settings(
            broker_url=f"redis://127.0.0.1:{port}/0",
            result_backend=f"redis://127.0.0.1:{port}/1",
            queue=f"farpool-consume-{uuid.uuid4().hex[:8]}",
            concurrency=processes,
            embedded_broker="auto",
            data_dir=tmp,
            consume_path=consume_path,
        )
        app = create_app(settings)
        cluster = LocalCluster(settings, app)
        try:
            with python_path(REPO_ROOT):
                cluster.start()
            with Pool(app=app) as pool:
                return measure(
                    lambda: pool.apply(square, (3,)),
                    lambda items: pool.map(square, items, chunksize=1),
                    lambda items: pool.map_async(square, items, chunksize=1).get,
                )
        finally:
            cluster.stop()
            app.close()


def rabbitmq_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(RABBITMQ, timeout=1):
        return True
    return False


@contextlib.contextmanager
def rabbit_worker(processes: int, backend: str, queue: str, log: Path) -> Iterator[None]:
    broker = f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}//"
    command = [
        sys.executable, "-m", "celery", "-A", "benchmarks.rabbit_celery", "-b", broker,
        "--result-backend", backend, "worker", "-P", "prefork", "-c", str(processes), "-Q", queue,
        "--without-gossip", "--without-mingle", "-l", "warning", "-n", f"rabbit-{queue}@%h",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log.open("w") as output:
        worker = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def rabbit_side(processes: int) -> Row:
    from celery import group

    from benchmarks.rabbit_celery import app
    from producer.local.embedded import EmbeddedServer, ServerAddress

    with tempfile.TemporaryDirectory(prefix="farpool-rabbit-", ignore_cleanup_errors=True) as tmp:
        server = EmbeddedServer(ServerAddress("127.0.0.1", free_port(), None), Path(tmp))
        server.start()
        queue = f"rabbit-bench-{uuid.uuid4().hex[:8]}"
        app.conf.update(
            broker_url=f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}//",
            result_backend=f"{server.url.rsplit('/', 1)[0]}/2",
            task_default_queue=queue,
        )
        task = app.tasks["rabbit_bench.square"]
        try:
            with rabbit_worker(processes, str(app.conf.result_backend), queue, Path(tmp) / "worker.log"):
                task.apply_async((3,)).get(timeout=120)  # the worker is up

                def group_map(items: list[int]) -> Callable[[], Any]:
                    result = group(task.s(x) for x in items).apply_async()
                    return lambda: result.get(timeout=600)

                return measure(
                    lambda: task.apply_async((3,)).get(timeout=60),
                    lambda items: group_map(items)(),
                    group_map,
                )
        finally:
            app.close()
            server.stop()


def multiprocessing_side(processes: int) -> Row:
    import multiprocessing

    from benchmarks import work

    with multiprocessing.get_context(MP_START_METHOD).Pool(processes) as pool:
        return measure(
            lambda: pool.apply(work.square, (3,)),
            lambda items: pool.map(work.square, items, chunksize=1),
            lambda items: pool.map_async(work.square, items, chunksize=1).get,
        )


COLUMNS = (
    ("apply_p50_ms", "apply p50", "ms", "{:.2f}"),
    ("apply_p99_ms", "apply p99", "ms", "{:.2f}"),
    ("chunksize_1_tasks_per_s", "chunksize=1", "tasks/s", "{:,.0f}"),
    ("map_async_5000_returns_s", "map_async returns", "s", "{:.3f}"),
    ("map_async_5000_done_s", "map_async done", "s", "{:.2f}"),
)
GOALS = {
    "apply_p50_ms": "≤ 1.5",
    "chunksize_1_tasks_per_s": "≥ 2,000",
    "map_async_5000_returns_s": "≤ 0.5",
}


def table(rows: dict[str, Row | str]) -> str:
    header = ["side"] + [f"{title} ({unit})" for _, title, unit, _ in COLUMNS]
    lines = [header, ["farpool goal"] + [GOALS.get(key, "") for key, *_ in COLUMNS]]
    for side, row in rows.items():
        if isinstance(row, str):
            lines.append([side, row] + [""] * (len(COLUMNS) - 1))
            continue
        cells = [
            fmt.format(row[key]) if isinstance(row.get(key), float) else "-" for key, _, _, fmt in COLUMNS
        ]
        lines.append([side, *cells])
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) for line in lines
    )


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m benchmarks.consume", description=(__doc__ or "").splitlines()[0]
    )
    cli.add_argument(
        "--processes", type=int, default=cores(), help="prefork processes per worker (default: cores)"
    )
    cli.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where consume.json goes")
    options = cli.parse_args(argv)
    rows: dict[str, Row | str] = {}
    rows["farpool (own consume path)"] = farpool_side("farpool", options.processes)
    rows["kombu stock Redis"] = farpool_side("kombu", options.processes)
    if rabbitmq_answers():
        rows["Celery on RabbitMQ"] = rabbit_side(options.processes)
    else:
        rows["Celery on RabbitMQ"] = f"skipped: nothing answers on {RABBITMQ[0]}:{RABBITMQ[1]}"
    rows["multiprocessing.Pool"] = multiprocessing_side(options.processes)
    print(
        f"consume path, {options.processes} prefork processes per worker, events off, acks late, prefetch 1"
    )
    print(table(rows))
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "consume.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
