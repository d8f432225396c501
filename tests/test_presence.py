"""Workers announce themselves (tasks/presence.py): a producer finds them without a broadcast."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Cluster
from faults_support import fault_cluster
from helpers import poll, run_cli

from producer.local.cluster import announced_workers
from tasks.presence import ANNOUNCE_TTL

pytestmark = pytest.mark.integration


def names(cluster: object) -> set[str]:
    app, queue = cluster.app, cluster.settings.queue  # type: ignore[attr-defined]
    return {worker.name for worker in announced_workers(app, queue)}


def test_a_worker_is_known_as_soon_as_it_is_up_and_forgotten_when_it_stops(tmp_path: Path) -> None:
    with fault_cluster(tmp_path, workers=0) as cluster:
        assert names(cluster) == set()
        first = cluster.start_worker()
        found = announced_workers(cluster.app, cluster.settings.queue)
        assert [(worker.processes, worker.queues) for worker in found] == [(2, (cluster.settings.queue,))]
        second = cluster.start_worker()
        assert len(names(cluster)) == 2
        second.stop()  # a warm shutdown withdraws its entry at once
        assert names(cluster) == {found[0].name}
        first.stop()
        assert names(cluster) == set()


def test_a_killed_worker_drops_out_after_its_announcement_expires(tmp_path: Path) -> None:
    with fault_cluster(tmp_path, workers=0) as cluster:
        worker = cluster.start_worker()
        assert len(names(cluster)) == 1
        cluster.kill_worker(worker)
        poll(lambda: names(cluster) == set() or None, "the killed worker to drop out", ANNOUNCE_TTL + 10)


def test_a_pool_finds_a_running_worker_without_a_broadcast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import producer.local.cluster

    def no_broadcast(*args: object, **kwargs: object) -> list[object]:
        raise AssertionError("Pool() asked the workers by broadcast")

    with fault_cluster(tmp_path, workers=1) as cluster:
        monkeypatch.setattr(producer.local.cluster, "ask_workers", no_broadcast)
        with cluster.pool() as pool:
            assert pool.map("usertasks.cube", range(4)) == [0, 1, 8, 27]


def test_farpool_cluster_lists_the_workers_without_a_broadcast(cluster: Cluster) -> None:
    """`farpool cluster` reads the announcements: no remote-control message goes out."""
    pubsub: Any = cluster.app.backend.client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("*pidbox*")
    try:
        report = json.loads(run_cli("cluster", "--json", env=cluster.env).stdout)
        end = time.monotonic() + 0.5
        broadcasts = []
        while time.monotonic() < end:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                broadcasts.append(message["channel"])
    finally:
        pubsub.close()
    assert broadcasts == []
    (worker,) = [w for w in report["workers"] if cluster.settings.queue in w["queues"]]
    assert worker["processes"] == cluster.settings.concurrency and worker["load"] and worker["memory_total"]


def test_a_pools_own_worker_is_gone_and_forgotten_as_soon_as_the_pool_ends(
    valkey_server: Any, tmp_path: Path
) -> None:
    """Its pool done, the local worker a pool started is killed (no 2 s warm shutdown) and its
    announcement withdrawn at once, not left for ANNOUNCE_TTL s (producer/local/readiness.py)."""
    from config import load_settings
    from producer import Pool
    from tasks import create_app
    from tasks.examples import square

    queue = f"farpool-test-{time.monotonic_ns()}"
    options = {"queue": queue, "concurrency": 1, "data_dir": str(tmp_path), "embedded_broker": "auto"}
    settings = load_settings(broker_url=valkey_server.url, **options)
    app = create_app(settings)
    try:
        with Pool(app=app) as pool:
            assert pool.map(square, range(4)) == [0, 1, 4, 9]
            assert len(announced_workers(app, queue)) == 1
            process = pool._local.worker.process  # type: ignore[attr-defined]
        assert process.poll() is not None
        assert announced_workers(app, queue) == []
    finally:
        app.close()
