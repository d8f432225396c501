"""Faults across hosts, timed: how long a map takes to complete (or fail) after each fault.

`python -m benchmarks.recovery [--runs N]` (`make failover` runs it with benchmarks.failover;
root: it makes network namespaces) builds the bed of tests/test_hosts.py (a broker host with the
bundled Valkey, AOF on; three worker hosts, one process each; a producer host;
FARPOOL_VISIBILITY_TIMEOUT=6) and, N times per fault, starts a map of 24 × 300 ms, injects the
fault once host1 runs a chunk, and records the seconds from the fault to the map's end, and
whether each result arrived exactly once. The same map without a fault is the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
ITEMS, MILLISECONDS = 24, 300
BROKER_TIMEOUT = "8"


def timed_map(
    cluster: Any, fault: Callable[[], None], after: Callable[[], None], **env: str
) -> tuple[float, str]:
    """Seconds from the fault to the map's end, and how it ended."""
    from farpool_hosts import each_once
    from helpers import poll

    with cluster.start_map(MILLISECONDS, ITEMS, **env) as run:
        poll(lambda: cluster.running_on("host1"), "host1 to run a chunk", 60)
        began = time.monotonic()
        fault()
        stdout, stderr = run.communicate(timeout=300)
        seconds = time.monotonic() - began
    after()
    if run.returncode != 0:
        return seconds, "failed: " + stderr.strip().splitlines()[-1][:90]
    each_once(stdout, ITEMS)
    return seconds, "completed, each result once"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from farpool_hosts import HostCluster, farpool_env, valkey_command
    from helpers import poll
    from hostbed import HostBed, unavailable

    from config import load_settings
    from tasks import create_app

    why_not = unavailable()
    if why_not is not None:
        print(f"recovery: skipped ({why_not})")
        return 0
    with tempfile.TemporaryDirectory(prefix="farpool-recovery-") as folder:
        logs = Path(folder)
        bed = HostBed(logs)
        try:
            broker = bed.add("broker")
            url = f"redis://{broker.address}:6379/0"
            env = farpool_env(logs, url, "farpool-recovery")
            broker.start("valkey", valkey_command(broker, logs), env)
            workers = {name: bed.add(name) for name in ("host1", "host2", "host3")}
            app = create_app(load_settings(broker_url=url, queue="farpool-recovery", embedded_broker="never"))
            cluster = HostCluster(
                bed=bed, workers=workers, producer=bed.add("producer"), env=env, app=app, logs=logs
            )
            cluster.start_workers()
            host1, producer = workers["host1"], cluster.producer

            def nothing() -> None:
                pass

            def rejoin() -> None:
                cluster.start_worker("host1")
                cluster.wait_for_workers()

            def heal_and_settle(host: Any) -> Callable[[], None]:
                def after() -> None:
                    host.heal()
                    cluster.wait_for_workers()
                    poll(cluster.idle, "the cluster to settle", 120)

                return after

            def restart_broker() -> None:
                broker.power_off()
                broker.start("valkey", valkey_command(broker, logs), env)

            def cut_briefly() -> None:
                producer.cut()
                time.sleep(3)  # the fault itself: a 3 s cut
                producer.heal()

            faults: list[tuple[str, Callable[[], None], Callable[[], None], dict[str, str]]] = [
                ("no fault (baseline)", nothing, nothing, {}),
                ("a worker host loses power", host1.power_off, rejoin, {}),
                ("a worker host is cut off (until the map ends)", host1.cut, heal_and_settle(host1), {}),
                (
                    "the broker host restarts (AOF, fsync always)",
                    restart_broker,
                    cluster.wait_for_workers,
                    {},
                ),
                ("the producer host is cut off for 3 s", cut_briefly, nothing, {}),
                (
                    f"the producer host is cut off for good (FARPOOL_BROKER_TIMEOUT={BROKER_TIMEOUT})",
                    producer.cut,
                    heal_and_settle(producer),
                    {"FARPOOL_BROKER_TIMEOUT": BROKER_TIMEOUT},
                ),
            ]
            print("| fault | what happened | seconds from the fault to the map's end (median, min–max) |")
            print("|---|---|---|")
            for name, fault, after, extra in faults:
                seconds, outcomes = [], set()
                for _ in range(arguments.runs):
                    took, outcome = timed_map(cluster, fault, after, **extra)
                    seconds.append(took)
                    outcomes.add(outcome)
                    if outcome.startswith("failed") and "BROKER_TIMEOUT" not in name:
                        break
                spread = f"{statistics.median(seconds):.1f} ({min(seconds):.1f}–{max(seconds):.1f})"
                print(f"| {name} | {'; '.join(sorted(outcomes))} | {spread} |", flush=True)
            for key in cluster.app.backend.client.scan_iter(match="celery-task-meta-*"):
                cluster.app.backend.client.delete(key)
            app.close()
        finally:
            bed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
