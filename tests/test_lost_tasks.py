"""A task that is nowhere — purged, its queue deleted, the database flushed — fails its waiting
call with LostTasks within seconds, on the same server (no failover, no restart): before, the
call (and `farpool result ID`) waited for ever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
import usertasks
from faults_support import fault_cluster
from helpers import poll, run_cli

import producer
from producer.inflight.lost import STALL_SECONDS

pytestmark = pytest.mark.integration

NAP = usertasks.nap_until_file
# A stall, two looks a second apart, and a margin for a loaded machine: far below "for ever".
LOST_WITHIN = STALL_SECONDS + 30


def queued(client: redis.Redis, queue: str) -> int:
    return int(client.llen(queue))


def test_a_map_whose_queued_chunks_are_purged_fails_with_lost_tasks(tmp_path: Path) -> None:
    release = tmp_path / "release"
    with fault_cluster(tmp_path) as cluster, redis.Redis.from_url(cluster.settings.broker_url) as client:
        pool = cluster.pool()
        result = pool.starmap_async(NAP, [(str(release), 120.0)] * 6, chunksize=1)
        queue = cluster.settings.queue
        poll(lambda: queued(client, queue) == 4, "two chunks to run and four to wait")
        purge = [sys.executable, "-m", "celery", "-A", "tasks", "purge", "-f", "-Q", queue]
        subprocess.run(purge, env=cluster.env, check=True, capture_output=True, timeout=60)
        assert queued(client, queue) == 0
        try:
            with pytest.raises(producer.LostTasks, match=r"no longer has 4 of the tasks .* purge"):
                result.get(timeout=LOST_WITHIN)
        finally:
            release.touch()


def test_farpool_result_of_a_deleted_queue_says_the_tasks_are_lost(tmp_path: Path) -> None:
    """The issue's case: `farpool submit`, the queue removed, then `farpool result ID`."""
    release = tmp_path / "release"
    with fault_cluster(tmp_path) as cluster, redis.Redis.from_url(cluster.settings.broker_url) as client:
        pool = cluster.pool()
        result = pool.starmap_async(NAP, [(str(release), 120.0)] * 4, chunksize=1)
        queue = cluster.settings.queue
        poll(lambda: queued(client, queue) == 2, "two chunks to run and two to wait")
        client.delete(queue)
        try:
            done = run_cli("result", result.id, "--timeout", str(LOST_WITHIN), env=cluster.env)
        finally:
            release.touch()
        assert done.returncode != 0
        assert "no longer has 2 of the tasks" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def scripts_run(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_eval", "cmdstat_evalsha"))


def test_a_long_chunk_is_not_taken_for_lost(tmp_path: Path) -> None:
    """Nothing arrives for far longer than the stall that starts a look: two looks find the held
    chunks in their workers' in-flight lists and the queued one in its queue; the map returns."""
    release = tmp_path / "release"
    with fault_cluster(tmp_path) as cluster, redis.Redis.from_url(cluster.settings.broker_url) as client:
        pool = cluster.pool()
        result = pool.starmap_async(NAP, [(str(release), 120.0)] * 3, chunksize=1)
        queue = cluster.settings.queue
        poll(lambda: queued(client, queue) == 1, "two chunks to run and one to wait")
        before = scripts_run(client)  # a look is one script; nothing else runs one meanwhile
        poll(lambda: scripts_run(client) >= before + 2, "the pool to look for its tasks twice", timeout=60)
        assert not result.ready()
        release.touch()
        assert result.get(timeout=60) == [True, True, True]
