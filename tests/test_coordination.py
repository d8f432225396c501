"""Lock, Semaphore, Queue and Event shared by a producer and its tasks (tasks/coordination)."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults_support import FAULT_TASKS, FaultCluster, fault_cluster
from helpers import poll

from producer import BoundedSemaphore, Event, Lock, Queue, Semaphore
from producer.local.cluster import announced_workers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    """A worker with 4 processes that can run tests/usertasks_sync.py."""
    folder = tmp_path_factory.mktemp("coordination")
    with fault_cluster(folder, concurrency=4, include=(*FAULT_TASKS, "usertasks_sync")) as cluster:
        yield cluster


def running(cluster: FaultCluster) -> list[str]:
    """What the worker's processes run now, as it announces it (every 2 s)."""
    return [
        name for worker in announced_workers(cluster.app, cluster.settings.queue) for name in worker.running
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_400_increments_under_a_lock_count_400_and_without_it_lose_some(
    four: FaultCluster, tmp_path: Path
) -> None:
    locked, unlocked = tmp_path / "locked", tmp_path / "unlocked"
    locked.write_text("0")
    unlocked.write_text("0")
    lock = Lock(unique("counter"), app=four.app)
    with four.pool() as pool:
        pool.starmap("usertasks_sync.increment", [(str(locked), lock)] * 400, chunksize=1)
        pool.starmap("usertasks_sync.increment", [(str(unlocked), None)] * 400, chunksize=1)
    assert int(locked.read_text()) == 400
    assert int(unlocked.read_text()) < 400  # the same tasks without the lock lose updates


def peak(log: Path) -> int:
    events = []
    for line in log.read_text().split("\n"):
        if line:
            began, ended = map(float, line.split())
            events += [(began, 1), (ended, -1)]
    running = highest = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):
        running += change
        highest = max(highest, running)
    return highest


def test_a_semaphore_of_2_lets_exactly_2_of_4_processes_in_at_once(
    four: FaultCluster, tmp_path: Path
) -> None:
    log = tmp_path / "calls"
    semaphore = Semaphore(unique("api"), 2, app=four.app)
    with four.pool() as pool:
        pool.starmap("usertasks_sync.limited", [(semaphore, str(log), 0.3)] * 8, chunksize=1)
    assert peak(log) == 2
    assert semaphore.get_value() == 2


def test_a_lock_held_by_a_killed_process_is_free_after_its_lease(four: FaultCluster, tmp_path: Path) -> None:
    lock = Lock(unique("dies"), lease=3, app=four.app)
    marker = tmp_path / "died"
    with four.pool() as pool:
        dying = pool.apply_async("usertasks_sync.die_holding", (lock, str(marker)))
        poll(marker.exists, "the first run to take the lock and die")
        died_at = float(marker.read_text())
        after = pool.apply_async("usertasks_sync.after_lock", (lock,))
        got_at = after.get(60)
        assert dying.get(60) == "ran again"  # redelivered, it took the lock once free
    assert 2.0 <= got_at - died_at < 30  # not before the lease ends; not held for ever


def test_a_queue_brings_every_partial_result_once_in_order_while_the_map_runs(four: FaultCluster) -> None:
    parts = Queue(unique("parts"), app=four.app)
    got: list[list[int]] = []
    with four.pool() as pool:
        result = pool.starmap_async("usertasks_sync.stream", [(parts, x, 25) for x in range(8)], chunksize=1)
        while len(got) < 8 * 25:
            got.append(parts.get(timeout=60))
        assert result.get(60) == list(range(8))
    assert sorted(map(tuple, got)) == [(x, part) for x in range(8) for part in range(25)]
    for x in range(8):
        assert [part for sender, part in got if sender == x] == list(range(25))  # per producer
    assert parts.empty()
    parts.delete()


def test_tasks_wait_on_an_event_until_the_producer_sets_it(four: FaultCluster) -> None:
    event = Event(unique("go"), app=four.app)
    with four.pool() as pool:
        waiting = pool.starmap_async("usertasks_sync.wait_for", [(event, 30)] * 3, chunksize=1)
        poll(lambda: running(four).count("wait_for") == 3, "3 tasks to wait on the event")
        assert not waiting.ready()
        event.set()
        assert [released for released, _ in waiting.get(60)] == [True, True, True]
    assert event.is_set()
    event.clear()
    assert not event.is_set() and event.wait(0.2) is False


def test_a_reliable_queue_gives_an_item_back_when_its_getter_dies(four: FaultCluster, tmp_path: Path) -> None:
    jobs = Queue(unique("jobs"), reliable=True, lease=3, app=four.app)
    jobs.put({"job": 1})
    with four.pool() as pool:
        assert pool.apply("usertasks_sync.take_and_die", (jobs, str(tmp_path / "died"))) == {"job": 1}
    assert jobs.empty() and not jobs.full()
    jobs.delete()


def test_multiprocessing_semantics_on_the_producer_side(four: FaultCluster) -> None:
    lock = Lock(unique("plain"), app=four.app)
    assert lock.acquire() and not Lock(lock.name, app=four.app).acquire(block=False)
    assert Lock(lock.name, app=four.app).acquire(timeout=0.2) is False
    lock.release()
    with pytest.raises(ValueError, match="not acquired"):
        lock.release()

    bounded = BoundedSemaphore(unique("bounded"), 1, app=four.app)
    with bounded:
        assert not bounded.acquire(block=False)
    with pytest.raises(ValueError, match="too many"):
        bounded.release()
    counting = Semaphore(unique("counting"), 0, app=four.app)
    counting.release()  # as multiprocessing's: a release adds a slot
    assert counting.acquire(timeout=1)

    small = Queue(unique("small"), maxsize=1, app=four.app)
    small.put_nowait((1, "a"))
    assert small.full()
    with pytest.raises(queue.Full):
        small.put(2, timeout=0.2)
    assert small.get_nowait() == (1, "a")  # JSON both ways, tuples kept
    with pytest.raises(queue.Empty):
        small.get(timeout=0.2)
    with pytest.raises(TypeError):
        small.put(object())

    waiter = threading.Thread(target=lambda: small.put("late"))
    small.put("first")
    waiter.start()  # blocks on the server until the get below makes room
    assert small.get(timeout=5) == "first" and small.get(timeout=5) == "late"
    waiter.join(5)
    small.delete()


@pytest.mark.parametrize("name", ["", "x" * 201, "has space", "a/b", None, 3])
def test_a_bad_name_is_one_clear_error(name: object) -> None:
    for kind in (Lock, Semaphore, Queue, Event):
        with pytest.raises(ValueError, match="name"):
            kind(name)  # type: ignore[arg-type]


def test_a_broker_restart_keeps_items_slots_and_flags(tmp_path: Path) -> None:
    """The bundled broker keeps an append-only file: what was acknowledged survives a restart."""
    from conftest import cluster_settings, free_port

    from producer.local.embedded import EmbeddedServer, server_address
    from tasks import create_app

    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    server = EmbeddedServer(address, tmp_path)
    server.start()
    app = create_app(cluster_settings(server.url, tmp_path))
    try:
        items = Queue("kept", app=app)
        items.put([1, "one"])
        items.put([2, "two"])
        Event("flag", app=app).set()
        assert Semaphore("slots", 1, app=app).acquire(block=False)
        server.stop()
        server.start()
        assert items.get(timeout=10) == [1, "one"] and items.get(timeout=10) == [2, "two"]
        assert Event("flag", app=app).is_set()
        assert not Semaphore("slots", 1, app=app).acquire(block=False)
    finally:
        server.stop()
        app.close()
