"""Faults: nothing is lost, every result arrives exactly once; and what the backend keeps.

Each fault test injects one fault in the middle of a map on a cluster of its own
(tests/faults_support.py: its own Valkey, workers and short timeouts) and checks that the map
returns every result once and in order. Runs are counted per item by usertasks_faults.counted: a
redelivered chunk may run an item twice, but its result still arrives once. Then: a broker that
is down at start, no worker online, a hanging task (per-call time limits), and the resources a
map leaves behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import Cluster, free_port
from faults_support import Background, FaultCluster, alive, fault_cluster, fault_settings
from helpers import poll, result_keys, run_cli
from usertasks_faults import held_done, held_pid, run_counts

import producer
from config import settings_env
from producer import NoWorkersError, Pool
from producer.local.embedded import EmbeddedServer, ServerAddress
from tasks import create_app
from tasks.inflight import held_messages
from tasks.wire import ALIVE_PREFIX, CONSUMERS, INFLIGHT_PREFIX, PRESENCE_PREFIX

COUNTED = "usertasks_faults.counted"
MAP_TIMEOUT = 60.0
# a dead consumer's liveness key (4 s), its confirmation (2 s) and a sweep, with room to spare
RECOVERY_TIMEOUT = 25.0
BROKER_DOWN_DEADLINE = 5.0


def counted_items(directory: Path, n: int, hold: int, hold_seconds: float, nap: float) -> list[list[object]]:
    return [[x, str(directory), hold, hold_seconds, nap] for x in range(n)]


def check_exactly_once(result: list[int], n: int, directory: Path, held: int) -> dict[str, int]:
    """Every result once and in order; every item ran at least once, the held one twice."""
    assert result == [x * x for x in range(n)]
    counts = run_counts(directory)
    assert set(counts) == {str(x) for x in range(n)}
    assert all(1 <= counts[str(x)] <= 2 for x in range(n)), counts
    assert counts[str(held)] == 2, f"the held item was not run again after the fault: {counts}"
    return counts


def test_sigkill_of_a_prefork_child_redelivers_its_chunk(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 24, 9
    with fault_cluster(tmp_path) as cluster:
        (worker,) = cluster.workers
        pool = cluster.pool()
        items = counted_items(runs, n, hold, hold_seconds=45, nap=0.05)
        mapping = Background(lambda: pool.starmap(COUNTED, items, chunksize=4))
        pid = poll(lambda: held_pid(runs), "the held item to start running")
        assert pid in cluster.pool_children(worker), "the held item is not running in a prefork child"
        os.kill(pid, signal.SIGKILL)
        result = mapping.result(MAP_TIMEOUT)
        check_exactly_once(result, n, runs, hold)
        assert not alive(pid)
        # The worker replaced its child and keeps serving.
        assert pool.map("usertasks.cube", range(5)) == [0, 1, 8, 27, 64]


def kill_the_worker_mid_map(cluster: FaultCluster, runs: Path, n: int, hold: int) -> Background:
    """Start a map, and SIGKILL the worker (main process and children) while it runs the held item."""
    (worker,) = cluster.workers
    pool = cluster.pool()
    items = counted_items(runs, n, hold, hold_seconds=45, nap=0.05)
    mapping = Background(lambda: pool.starmap(COUNTED, items, chunksize=4))
    pid = poll(lambda: held_pid(runs), "the held item to start running")
    family = {cluster.main_pid(worker), *cluster.pool_children(worker)}
    assert pid in family
    cluster.kill_worker(worker)
    poll(lambda: not any(alive(member) for member in family), "the worker's processes to be gone", timeout=10)
    assert not mapping.done()
    return mapping


def test_sigkill_of_the_whole_worker_then_a_new_worker_restores_its_chunks(tmp_path: Path) -> None:
    """A worker started after the dead one restores the chunks it held (tasks/inflight.py), with
    the default settings: no visibility timeout to wait for."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 24, 9
    with fault_cluster(tmp_path) as cluster:
        mapping = kill_the_worker_mid_map(cluster, runs, n, hold)
        assert held_messages(cluster.app.backend.client), "the killed worker held no message"
        cluster.start_worker()
        check_exactly_once(mapping.result(MAP_TIMEOUT), n, runs, hold)


def test_sigkill_of_the_whole_worker_then_an_immediate_restart_recovers_within_the_timeout(
    tmp_path: Path,
) -> None:
    """A worker restarted at once (as a supervisor does) recovers the chunks within seconds of the
    dead one's liveness key expiring, with the default settings (an hour's visibility timeout)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 24, 9
    with fault_cluster(tmp_path) as cluster:
        mapping = kill_the_worker_mid_map(cluster, runs, n, hold)
        cluster.start_worker()
        check_exactly_once(mapping.result(RECOVERY_TIMEOUT), n, runs, hold)


def stop_the_broker_mid_map(cluster: FaultCluster, runs: Path, n: int, hold: int) -> tuple[Pool, Background]:
    """Start a map, and stop the broker while the held item runs (1.5 s)."""
    pool = cluster.pool()
    items = counted_items(runs, n, hold, hold_seconds=1.5, nap=0.05)
    mapping = Background(lambda: pool.starmap(COUNTED, items, chunksize=4))
    poll(lambda: held_pid(runs), "the held item to start running")
    cluster.server.stop()
    return pool, mapping


def test_broker_restart_mid_map(tmp_path: Path) -> None:
    """Stop the broker (AOF on) while a chunk runs, let the chunk finish while it is down, start
    it again on the same port and data: producer and worker reconnect by themselves, the chunk's
    result is stored once the broker is back, and the map completes."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 24, 9
    with fault_cluster(tmp_path, visibility_timeout=3) as cluster:
        pool, mapping = stop_the_broker_mid_map(cluster, runs, n, hold)
        poll(lambda: held_done(runs), "the held item to finish while the broker is down", timeout=15)
        cluster.server.start()
        result = mapping.result(MAP_TIMEOUT)
        assert result == [x * x for x in range(n)]
        counts = run_counts(runs)
        assert set(counts) == {str(x) for x in range(n)}
        assert all(1 <= count <= 2 for count in counts.values()), counts
        # Both sides are back: a second map on the same pool works.
        assert pool.map("usertasks.cube", range(5)) == [0, 1, 8, 27, 64]


def test_a_broker_that_comes_back_empty_fails_the_map_instead_of_hanging(tmp_path: Path) -> None:
    """The broker restarts having kept nothing (no persistence, or a failover to a replica that
    had not received the chunks): the chunks that were queued are gone. The map raises
    LostTasks, naming the broker, instead of waiting for them for ever."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 24, 0
    with fault_cluster(tmp_path, visibility_timeout=3) as cluster:
        _, mapping = stop_the_broker_mid_map(cluster, runs, n, hold)
        shutil.rmtree(cluster.server.data_dir)  # what a replica that missed the writes has
        cluster.server.start()
        with pytest.raises(producer.LostTasks, match=r"changed .* no longer has \d+ of the tasks"):
            mapping.result(MAP_TIMEOUT)


def test_a_connection_drop_while_the_producer_cleans_up_does_not_hang_the_map(pool: Pool) -> None:
    """The backend drops the connection (once) just as the producer deletes the collected result
    keys: every result has arrived, so the map returns them (the keys expire by themselves)."""
    ledger = pool._ledger
    real_collect = ledger.collect
    drops = []

    def collect_dropping_once(task_ids: Any, record_id: str | None = None) -> None:
        if not drops:
            drops.append(True)
            raise redis.ConnectionError("Connection closed by server.")
        real_collect(task_ids, record_id)

    ledger.collect = collect_dropping_once  # type: ignore[method-assign]
    mapping = Background(lambda: pool.map("tasks.examples.square", range(10), chunksize=3))
    assert mapping.result(20) == [x * x for x in range(10)]
    assert drops, "the fault was never injected"


# -- broker down, no worker -----------------------------------------------------------------------


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farpool: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [["map", "tasks.examples.square", "1", "2"], ["apply", "tasks.examples.square", "3"]],
    ids=["map", "apply"],
)
def test_broker_down_at_start_is_one_line_naming_the_masked_url(command: list[str]) -> None:
    password = "down-" + uuid.uuid4().hex
    url = f"redis://:{password}@127.0.0.1:{free_port()}/0"
    env = {**os.environ, "FARPOOL_BROKER_URL": url, "FARPOOL_EMBEDDED_BROKER": "never"}
    env.pop("FARPOOL_RESULT_BACKEND", None)
    began = time.monotonic()
    done = run_cli(*command, env=env, timeout=30)
    elapsed = time.monotonic() - began
    line = one_error_line(done)
    assert url.replace(password, "***") in line
    assert password not in done.stderr + done.stdout
    # The one requirement on time in this suite: "no broker" is an answer, not a hang (DESIGN §3).
    assert elapsed < BROKER_DOWN_DEADLINE, f"took {elapsed:.1f} s"


def test_no_worker_online_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    address = ServerAddress("127.0.0.1", free_port(), None)
    with EmbeddedServer(address, tmp_path) as server:
        settings = fault_settings(server.url, tmp_path)
        app = create_app(settings)
        try:
            with pytest.raises(NoWorkersError, match=r"celery -A tasks worker") as caught:
                Pool(app=app)
            assert settings.queue in str(caught.value)
        finally:
            app.close()
        env = {**os.environ, **settings_env(settings)}
        for command in (["map", "tasks.examples.square", "1", "2"], ["apply", "tasks.examples.square", "3"]):
            line = one_error_line(run_cli(*command, env=env, timeout=60))
            assert "no worker" in line and "celery -A tasks worker" in line, line
        queued = redis.Redis.from_url(server.url)
        try:
            assert queued.llen(settings.queue) == 0, "work was queued with no worker to run it"
        finally:
            queued.close()


# -- a task that hangs ----------------------------------------------------------------------------


def test_a_hanging_item_meets_its_per_call_time_limit(pool: Pool) -> None:
    with pytest.raises(TimeoutError, match=r"tasks\.examples\.nap") as caught:
        pool.map("tasks.examples.nap", [0, 30], chunksize=1, timeout=1)
    assert isinstance(caught.value, producer.TimeoutError)
    # The worker process is free again: the cluster keeps serving.
    assert pool.map("tasks.examples.square", range(8), chunksize=1) == [x * x for x in range(8)]


# -- resources ------------------------------------------------------------------------------------

MILLION = 1_000_000
# Celery's chord claim/done markers (`….c`) carry a token, no result, and a fixed TTL of at least
# 300 s of Celery's own (celery/backends/redis.py on_chord_part_return), whatever result_expires is.
CHORD_MARKER_TTL = 300


def test_a_million_item_map_leaves_no_result_keys(cluster: Cluster, pool: Pool) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    result = pool.map("tasks.examples.square", range(MILLION))
    assert len(result) == MILLION
    assert result[:3] == [0, 1, 4] and result[-1] == (MILLION - 1) ** 2
    assert result_keys(client) == before


def test_result_expires_bounds_what_an_abandoned_map_async_leaves(tmp_path: Path) -> None:
    expires = 5
    with fault_cluster(tmp_path, result_expires=expires) as cluster:
        client = cluster.app.backend.client
        # the broker's own keys, and the workers' announcements (they live as long as a worker)
        broker_keys = (
            b"_kombu",
            b"unacked",
            cluster.settings.queue.encode(),
            PRESENCE_PREFIX.encode(),
            *(prefix.encode() for prefix in (CONSUMERS, INFLIGHT_PREFIX, ALIVE_PREFIX)),
        )
        pool = cluster.pool()
        submitted = pool.map_async("tasks.examples.nap", [0.2] * 8, chunksize=2)
        pool.detach()  # abandoned: nobody will collect it
        gather_key = cluster.app.backend.get_key_for_task(submitted.id)
        ttls: dict[bytes, int] = {}

        def snapshot() -> bool:
            done = bool(client.exists(gather_key))
            for key in client.scan_iter(count=1000):
                if not key.startswith(broker_keys):
                    ttl = client.ttl(key)
                    if ttl != -2:  # -2: expired or deleted since the scan
                        ttls[key] = max(ttl, ttls.get(key, ttl))
            return done

        poll(snapshot, "the abandoned map to finish")
        snapshot()
        assert any(key.startswith(b"farpool-call-") for key in ttls), ttls
        assert gather_key in ttls
        assert len(ttls) > 3, "too few keys seen to say anything"
        unbounded = {key: ttl for key, ttl in ttls.items() if ttl == -1}
        assert not unbounded, f"keys that never expire: {unbounded}"
        too_long = {
            key: ttl
            for key, ttl in ttls.items()
            if ttl > (CHORD_MARKER_TTL if key.endswith(b".c") else expires)
        }
        assert not too_long, f"keys outliving result_expires={expires}: {too_long}"
