"""The hosts section of `make bench`: the broker and the workers on hosts of their own.

Network namespaces on a bridge (tests/hostbed.py, root only): a broker host running the bundled
Valkey, two worker hosts each running `celery -A tasks worker --concurrency 1`, and the
producer in this process, on the bridge's own address. Latency is added by a delaying TCP proxy
on the broker host (tests/delay_proxy.py; this kernel has no netem), which every process
then goes through: 0, 1 and 5 ms of round trip.

Per latency: `apply` round trip (p50), and a map of ITEMS × 2 ms of CPU, as an efficiency
(serial CPU time / (2 processes × wall time)) for imap with farpool's adaptive chunks, imap
with chunksize=1, and map with the stdlib's default chunksize (len / (4 × processes)).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
ITEMS = 600
MILLISECONDS = 2.0
APPLY_CALLS = 60
LATENCIES_MS = (0.0, 1.0, 5.0)
PROCESSES = 2
QUEUE = "farpool-bench-hosts"


def unavailable() -> str | None:
    sys.path.insert(0, str(TESTS))
    from hostbed import unavailable as why_not

    return why_not()


def _measure(pool: Any, burn: Any, square: Any) -> dict[str, float]:
    items = [MILLISECONDS] * ITEMS
    serial = ITEMS * MILLISECONDS / 1000
    figures: dict[str, float] = {}
    pool.apply(square, (3,))
    calls = []
    for _ in range(APPLY_CALLS):
        began = time.perf_counter()
        pool.apply(square, (3,))
        calls.append(time.perf_counter() - began)
    figures["apply_p50_ms"] = statistics.median(calls) * 1000
    stdlib_chunksize = math.ceil(ITEMS / (4 * PROCESSES))
    runs = {
        "imap_adaptive": lambda: list(pool.imap(burn, items)),
        "imap_chunksize_1": lambda: list(pool.imap(burn, items, chunksize=1)),
        "map_stdlib_default": lambda: pool.map(burn, items, chunksize=stdlib_chunksize),
    }
    for name, run in runs.items():
        began = time.perf_counter()
        run()
        figures[name] = serial / (PROCESSES * (time.perf_counter() - began))
    return figures


def _wait_for_workers(app: Any, count: int) -> None:
    from helpers import poll

    from producer.local.cluster import online_workers

    poll(lambda: len(online_workers(app, queue=QUEUE)) == count or None, "the bench's workers", 60)


def run_hosts_section(logs: Path) -> dict[str, dict[str, float]]:
    """{latency label: figures}; the bed is made and removed here."""
    sys.path.insert(0, str(TESTS))
    from farpool_hosts import farpool_env, valkey_command
    from hostbed import HostBed, python

    from benchmarks import work
    from config import load_settings
    from producer import Pool
    from tasks import create_app

    results: dict[str, dict[str, float]] = {}
    bed = HostBed(logs)
    try:
        broker = bed.add("broker")
        env = farpool_env(logs, f"redis://{broker.address}:6379/0", QUEUE, include="benchmarks.work")
        env["PYTHONPATH"] = f"{TESTS.parent}:{TESTS}"
        broker.start("valkey", valkey_command(broker, logs), env)
        workers = [bed.add(name) for name in ("host1", "host2")]
        for latency in LATENCIES_MS:
            port = 6379
            if latency:
                port = 6380 + int(latency)
                proxy = [str(TESTS / "delay_proxy.py"), broker.address, str(port), broker.address, "6379"]
                broker.start(f"proxy-{latency:g}ms", python(*proxy, str(latency / 2)), env)
            url = f"redis://{broker.address}:{port}/0"
            worker_env = {**env, "FARPOOL_BROKER_URL": url}
            for host in workers:
                command = python("-m", "celery", "-A", "tasks", "worker", "--hostname", f"bench@{host.name}")
                host.start(f"worker-{latency:g}ms", [*command, "--loglevel", "WARNING"], worker_env)
            settings = load_settings(
                broker_url=url, queue=QUEUE, embedded_broker="never", include=("benchmarks.work",)
            )
            app = create_app(settings)
            try:
                _wait_for_workers(app, len(workers))
                with Pool(app=app, start_local=False) as pool:
                    results[f"{latency:g} ms"] = _measure(pool, work.burn, work.square)
            finally:
                app.close()
                for host in workers:
                    host.power_off()
    finally:
        bed.close()
    return results


def hosts_table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        f"\nhosts: broker, 2 worker hosts × 1 process, producer: each in its own network namespace; "
        f"{ITEMS} items × {MILLISECONDS:g} ms of CPU",
        "| added round trip | apply p50 | imap, adaptive chunks | imap, chunksize=1 "
        "| map, stdlib default chunksize |",
        "|---|---|---|---|---|",
    ]
    for latency, figures in results.items():
        lines.append(
            f"| {latency} | {figures['apply_p50_ms']:.2f} ms | {figures['imap_adaptive']:.2f} | "
            f"{figures['imap_chunksize_1']:.2f} | {figures['map_stdlib_default']:.2f} |"
        )
    lines.append("(efficiency: serial CPU time / (2 processes × wall time); 1.00 is perfect)")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    why_not = unavailable()
    if why_not:
        print(f"hosts: skipped ({why_not})")
        raise SystemExit(0)
    with tempfile.TemporaryDirectory(prefix="farpool-bench-hosts-") as folder:
        print(hosts_table(run_hosts_section(Path(folder))))
