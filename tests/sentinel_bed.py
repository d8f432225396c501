"""A Sentinel-managed broker across hosts, with farpool workers and a producer (tests/hostbed.py).

A master and a replica on two hosts, three Sentinels (one beside each server, one on a host of
its own), two worker hosts and a producer host. Used by tests/test_failover.py and by the
failover figures of `make stress` (benchmarks/failover.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis
from farpool_hosts import HostCluster, farpool_env, valkey_command, valkey_server
from helpers import poll
from hostbed import Host, HostBed

from config import load_settings
from tasks import create_app

MASTER_NAME = "farpool"
QUEUE = "farpool-failover"
# Sentinel's view: a master silent for 1 s is down; two of the three Sentinels must agree.
SENTINEL_CONFIG = """\
port 26379
bind {address}
protected-mode no
dir {data}
sentinel monitor {name} {master} 6379 2
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 6000
sentinel parallel-syncs {name} 1
"""


@dataclass(kw_only=True)
class Failover(HostCluster):
    servers: list[Host]  # the master's host first
    sentinels: list[Host]

    def role(self, host: Host) -> str:
        client = redis.Redis(host=host.address, port=6379, socket_timeout=2)
        try:
            return str(client.role()[0], "ascii")
        finally:
            client.close()

    def master(self) -> Host:
        """The server host Sentinel has made master (after its failover, once it is over)."""
        for host in self.servers:
            try:
                if self.role(host) == "master":
                    return host
            except redis.RedisError:
                continue
        raise AssertionError("no server is master")

    def restart(self, host: Host) -> None:
        """Bring a killed server host back: as a replica of the current master, as Sentinel wants."""
        master = self.master()
        host.start(
            "valkey",
            valkey_command(host, self.logs / host.name, "--replicaof", master.address, "6379"),
            self.env,
        )
        start_sentinel(host, master, self.logs, self.env, fresh=False)
        poll(lambda: in_sync(host), f"{host.name} to catch up with the master", 60)
        poll(lambda: sentinels_agree(self.sentinels), "the Sentinels to see the restarted server", 60)


def start_sentinel(host: Host, master: Host, data: Path, env: dict[str, str], fresh: bool = True) -> None:
    config = data / f"sentinel-{host.name}.conf"
    if fresh or not config.exists():  # a restarted Sentinel keeps what it learnt
        config.write_text(
            SENTINEL_CONFIG.format(address=host.address, data=data, name=MASTER_NAME, master=master.address)
        )
    host.start("sentinel", [valkey_server(), str(config), "--sentinel"], env)


def sentinels_agree(sentinels: list[Host]) -> bool | None:
    """True once every Sentinel knows the other two and the master's replica."""
    for host in sentinels:
        client = redis.Redis(host=host.address, port=26379, socket_timeout=2, decode_responses=True)
        try:
            master = client.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return None
        finally:
            client.close()
        if master["num-other-sentinels"] != 2 or master["num-slaves"] != 1:
            return None
    return True


def in_sync(host: Host) -> bool | None:
    """True once the replica on `host` has a live link to its master and no sync in progress."""
    client = redis.Redis(host=host.address, port=6379, socket_timeout=2, decode_responses=True)
    try:
        info = client.info("replication")
    except redis.RedisError:
        return None
    finally:
        client.close()
    return (info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")) or None


def sentinel_cluster(bed: HostBed, logs: Path, **settings: str) -> Failover:
    """The servers, Sentinels and workers on `bed`, up and agreed."""
    master, replica, witness = bed.add("redis-a"), bed.add("redis-b"), bed.add("sentinel")
    sentinels = [master, replica, witness]
    url = ";".join(f"sentinel://{host.address}:26379" for host in sentinels)
    env = farpool_env(logs, url, QUEUE, sentinel_master=MASTER_NAME, **settings)
    for host in (master, replica):
        (logs / host.name).mkdir()
    master.start("valkey", valkey_command(master, logs / master.name), env)
    replica.start(
        "valkey", valkey_command(replica, logs / replica.name, "--replicaof", master.address, "6379"), env
    )
    for host in sentinels:
        start_sentinel(host, master, logs, env)
    poll(lambda: in_sync(replica), "the replica to catch up with the master", 60)
    poll(lambda: sentinels_agree(sentinels), "the Sentinels to find each other and the replica", 60)
    workers = {name: bed.add(name) for name in ("host1", "host2")}
    producer = bed.add("producer")
    app = create_app(
        load_settings(broker_url=url, sentinel_master=MASTER_NAME, queue=QUEUE, embedded_broker="never")
    )
    cluster = Failover(
        bed=bed,
        workers=workers,
        producer=producer,
        env=env,
        app=app,
        logs=logs,
        servers=[master, replica],
        sentinels=sentinels,
    )
    cluster.start_workers()
    return cluster
