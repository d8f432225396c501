"""farpool across several hosts: network namespaces made by the test (tests/hostbed.py).

Run them alone with `pytest -m hosts`; they skip, saying why, where namespaces cannot be made.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from farpool_hosts import HostCluster, farpool_env, finished, valkey_command
from helpers import poll, result_keys
from hostbed import SUBNET, Host, HostBed, python, unavailable
from kombu.transport import redis as kombu_redis

from config import load_settings
from tasks import create_app

pytestmark = [pytest.mark.hosts, pytest.mark.integration]
WHY_NOT = unavailable()
if WHY_NOT is not None:
    pytestmark.append(pytest.mark.skip(reason=f"no multi-host bed: {WHY_NOT}"))

BROKER = f"redis://{SUBNET}.10:6379/0"
BACKEND = f"redis://{SUBNET}.10:6379/1"
QUEUE = "farpool-hosts"
WORKER_HOSTS = ("host1", "host2", "host3")


@dataclass(kw_only=True)
class Bed(HostCluster):
    """The hosts cluster with its one broker host, and clients of that broker for the checks."""

    broker: Host
    broker_client: redis.Redis = field(default_factory=lambda: redis.Redis.from_url(BROKER))
    backend: redis.Redis = field(default_factory=lambda: redis.Redis.from_url(BACKEND))


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    logs = tmp_path_factory.mktemp("hosts")
    bed = HostBed(logs)
    try:
        env = farpool_env(logs, BROKER, QUEUE, programs="hostname")  # for tasks.programs.run
        broker = bed.add("broker")
        broker.start("valkey", valkey_command(broker, logs), env)
        workers = {name: bed.add(name) for name in WORKER_HOSTS}
        producer = bed.add("producer")
        app = create_app(load_settings(broker_url=BROKER, queue=QUEUE, embedded_broker="never"))
        hosts = Bed(bed=bed, broker=broker, workers=workers, producer=producer, env=env, app=app, logs=logs)
        hosts.start_workers()
        yield hosts
        app.close()
    finally:
        bed.close()


def test_a_map_is_spread_over_every_worker_host(hosts: Bed) -> None:
    assert set(hosts.run_map(30, 30)) == set(WORKER_HOSTS)
    listed = hosts.producer.run(python("-m", "producer", "cluster", "--json"), hosts.env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    workers = json.loads(listed.stdout)["workers"]
    assert sorted((worker["host"], worker["processes"]) for worker in workers) == [
        (name, 1) for name in WORKER_HOSTS
    ]


PROGRAMS_SCRIPT = """\
import json
import subprocess
from producer import Pool, run
from tasks import RefusedTask

with Pool(start_local=False) as pool:
    done = pool.map(run, [["hostname"]] * 12, chunksize=1)
    try:
        pool.apply(run, (["uname"],))
        refused = ""
    except RefusedTask as error:
        refused = str(error)
print(json.dumps({"ran_on": [d.stdout.decode().strip() for d in done], "refused": refused}))
"""


def test_a_worker_host_runs_a_program_it_lists(hosts: Bed) -> None:
    """FARPOOL_PROGRAMS=hostname on every worker host: `hostname` runs there, `uname` nowhere."""
    script = hosts.logs / "programs.py"
    script.write_text(PROGRAMS_SCRIPT)
    done = hosts.producer.run(python(str(script)), hosts.env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["ran_on"]) == 12 and set(report["ran_on"]) <= set(WORKER_HOSTS)
    assert "not listed" in report["refused"] and "FARPOOL_PROGRAMS: hostname" in report["refused"]


ARRAYS_SCRIPT = """\
import json, sys
import numpy as np
import hosttasks
from producer import Pool

milliseconds, items = float(sys.argv[1]), int(sys.argv[2])
with Pool(start_local=False) as pool:
    table = pool.put(np.arange(items, dtype=np.float64) * 1000)
    calls = [(index, np.full(1000, index, dtype=np.float32), table, milliseconds) for index in range(items)]
    print(json.dumps(pool.starmap(hosttasks.array_where, calls, chunksize=1)))
"""


def test_arrays_and_a_put_value_across_hosts_when_a_worker_host_loses_power(hosts: Bed) -> None:
    """The hosts share no memory with the producer: the arrays' bytes go through Redis."""
    script = hosts.logs / "arrays.py"
    script.write_text(ARRAYS_SCRIPT)
    command = hosts.producer.command(python(str(script), "300", "24"))
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, env=hosts.env, **pipes) as run:  # type: ignore[call-overload]
        poll(lambda: hosts.running_on("host1"), "host1 to run a chunk", 60)
        hosts.workers["host1"].power_off()
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    results = json.loads(stdout)
    assert sorted(index for index, _, _ in results) == list(range(24)), "each item once"
    assert all(value == index * 1000 + index * 1000 for index, _, value in results)
    assert {host for _, host, _ in results} >= {"host2", "host3"}
    assert not list(hosts.backend.scan_iter(match=b"farpool-data-*")), "no array bytes left"
    hosts.start_worker("host1")
    hosts.wait_for_workers()


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


def test_a_worker_host_cut_off_mid_map(hosts: Bed) -> None:
    log = hosts.worker_log("host1")
    with hosts.start_map(300, 24) as run:
        poll(lambda: hosts.running_on("host1"), "host1 to run a chunk", 60)
        hosts.workers["host1"].cut()
        try:
            ran_on = finished(run, 24, timeout=120)
            # the cut-off worker notices by itself, and says so, while its cable is still out
            poll(lambda: "Connection to broker lost" in log.read_text(), "host1's worker to notice", 30)
        finally:
            hosts.workers["host1"].heal()
    assert ran_on["host2"] and ran_on["host3"]
    # back: it reconnects by itself, and the result of the chunk it ran while away is dropped
    hosts.wait_for_workers()
    poll(lambda: hosts.idle(), "host1's late chunk to end", 90)
    assert result_keys(hosts.backend) == set()
    assert hosts.run_map(30, 30)["host1"] > 0


def test_a_worker_host_cut_off_holding_the_redelivery_mutex(hosts: Bed) -> None:
    """kombu lets one worker at a time redeliver, under a mutex with an expiry: a worker cut off
    while it holds the mutex must not hold up redelivery for longer than a visibility timeout."""
    options = hosts.app.conf.broker_transport_options
    expiry = options.get("unacked_mutex_expire", kombu_redis.Channel.unacked_mutex_expire)
    with hosts.start_map(300, 24) as run:
        poll(lambda: hosts.running_on("host2"), "host2 to run a chunk", 60)
        # what a worker leaves behind when its cable is pulled in the middle of a sweep
        hosts.broker_client.set("unacked_mutex", "a cut-off worker", nx=True, ex=expiry)
        hosts.workers["host2"].cut()
        try:
            finished(run, 24, timeout=60)
        finally:
            hosts.workers["host2"].heal()
    hosts.wait_for_workers()
    poll(lambda: hosts.idle(), "host2's late chunk to end", 90)


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
            poll(lambda: hosts.idle(), "the workers to finish the map while the producer is away", 60)
        finally:
            hosts.producer.heal()
        finished(run, 24, timeout=120)


def test_the_producer_host_cut_off_for_too_long(hosts: Bed) -> None:
    """Longer than FARPOOL_BROKER_TIMEOUT: get() raises, naming the broker, while the cable is out."""
    with hosts.start_map(300, 24, FARPOOL_BROKER_TIMEOUT="8") as run:
        poll(lambda: hosts.running_on("host1"), "host1 to run a chunk", 60)
        hosts.producer.cut()
        try:
            _, stderr = run.communicate(timeout=90)
        finally:
            hosts.producer.heal()
    assert run.returncode == 1
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"producer.errors.BrokerUnavailable: the broker at {BACKEND} has not")
    assert "FARPOOL_BROKER_TIMEOUT=8" in stderr
    # what it sent ran on: the results wait, and expire, for a producer that never came back
    poll(lambda: hosts.idle(), "the workers to finish the map", 60)
    left = result_keys(hosts.backend)
    assert left and all(0 < hosts.backend.ttl(key) <= 86400 for key in left)
    hosts.backend.delete(*left)
