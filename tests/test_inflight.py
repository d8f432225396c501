"""farpool's consume path (tasks/inflight.py): a take is its own record, and what a gone worker
held comes back within seconds, while a live worker's long chunk is never taken from it.

Each test fails on kombu's stock consume path (BRPOP, then a second command to record the take,
then redelivery after the visibility timeout only).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import broker_and_app, cluster_settings, free_port
from faults_support import Background, alive, fault_cluster
from helpers import poll
from kombu.transport import redis as kombu_redis
from test_faults import COUNTED, check_exactly_once, counted_items
from usertasks_faults import held_pid, run_counts

from producer.inflight.lost import missing_tasks
from producer.local.embedded import EmbeddedServer, server_address
from tasks import create_app
from tasks import transport as farpool_transport
from tasks.inflight import CONSUMERS, INFLIGHT_PREFIX

pytestmark = pytest.mark.integration

# Well past what the redelivery of a dead worker's chunk takes (a liveness key's 4 s, a 2 s
# confirmation and a 1 s sweep), far below the default visibility timeout (3600 s).
REDELIVERY_BOUND = 45.0


def kill_broker(server: EmbeddedServer) -> None:
    """SIGKILL the broker: what its AOF has (fsynced before each reply) is all it keeps."""
    process = server.process
    process.kill()
    process.wait()
    server.stop()


def take_then_kill_the_broker(app: Any, queue: str, server: EmbeddedServer) -> None:
    """A consumer takes one message; the broker is SIGKILLed as soon as the take's reply is read,
    and the consumer process is taken for dead (nothing it remembers puts the message back)."""
    taken: list[Any] = []
    connection = app.connection_for_read()
    try:
        channel = connection.default_channel
        client = channel.client
        real_parse = client.parse_response

        def parse_then_kill(conn: Any, command: str, **options: Any) -> Any:
            reply = real_parse(conn, command, **options)
            if command in ("BRPOP", "BLMOVE") and reply:
                kill_broker(server)
            return reply

        client.parse_response = parse_then_kill
        channel.do_restore = False  # a dead process restores nothing at its exit
        channel.basic_consume(queue, no_ack=False, callback=taken.append, consumer_tag="test")
        # kombu's record of the take meets the dead broker; farpool's take was its own record
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, OSError):
            connection.drain_events(timeout=10)
    finally:
        farpool_transport._taken_not_recorded.clear()  # the process is dead: its memory too
        with contextlib.suppress(Exception):
            connection.release()


def raw(url: str) -> redis.Redis:
    """A client of its own for one look, closed by `with` (an unclosed socket warns when collected)."""
    return redis.Redis.from_url(url)


def test_a_take_is_recorded_in_the_same_instant(tmp_path: Path) -> None:
    """Kill the broker (AOF, `appendfsync always`) right after each take: every message is still
    in the queue or held by a consumer. kombu's BRPOP lost the taken one (its record, a second
    command, never reached the broker)."""
    server, app = broker_and_app(tmp_path)
    queue = app.settings.queue
    try:
        with raw(server.url) as client:
            client.config_set("appendfsync", "always")
        sent = [app.send_task("tasks.examples.square", args=[x], queue=queue).id for x in range(5)]
        for _ in range(3):
            take_then_kill_the_broker(app, queue, server)
            server.start()
            with raw(server.url) as client:
                client.config_set("appendfsync", "always")
            assert missing_tasks(app, queue, sent) == [], "a message taken by a consumer is nowhere"
        with raw(server.url) as client:
            held = [
                json.loads(text)["headers"]["id"]
                for consumer in client.smembers(CONSUMERS)
                for text in client.lrange(INFLIGHT_PREFIX + consumer.decode(), 0, -1)
            ]
            queued = [json.loads(text)["headers"]["id"] for text in client.lrange(queue, 0, -1)]
        # each message once, queued or held (a sweep may already have returned a take of the
        # consumers this test played dead, when their liveness lapsed during a slow restart)
        assert sorted(held + queued) == sorted(sent) and len(held) >= 1, (held, queued)
    finally:
        server.stop()
        app.close()


def holding_worker(cluster: Any, pid: int) -> Any:
    (worker,) = [worker for worker in cluster.workers if pid in cluster.pool_children(worker)]
    return worker


def test_a_worker_killed_while_holding_a_chunk_has_it_run_elsewhere_within_seconds(tmp_path: Path) -> None:
    """SIGKILL the main process of the worker running a chunk, with the default settings (a
    visibility timeout of an hour): the other worker runs the chunk within seconds, and the map
    returns each result once."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 12, 5
    with fault_cluster(tmp_path, workers=2) as cluster:
        assert cluster.settings.visibility_timeout == 3600
        pool = cluster.pool()
        items = counted_items(runs, n, hold, hold_seconds=600, nap=0.05)
        mapping = Background(lambda: pool.starmap(COUNTED, items, chunksize=1))
        pid = poll(lambda: held_pid(runs), "the held item to start running")
        worker = holding_worker(cluster, pid)
        main = cluster.main_pid(worker)
        os.kill(main, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)  # its child would sleep on: only the redelivery can finish the map
        poll(lambda: not alive(main) and not alive(pid), "the worker to be gone", timeout=10)
        check_exactly_once(mapping.result(REDELIVERY_BOUND), n, runs, hold)


def test_a_long_chunk_on_a_live_worker_runs_once(tmp_path: Path) -> None:
    """A chunk longer than every sweep and liveness interval, and than the visibility timeout
    itself (3 s here), runs once while its worker lives: kombu ran it again after 3 s."""
    runs = tmp_path / "runs"
    runs.mkdir()
    n, hold = 4, 0
    with fault_cluster(tmp_path, workers=2, visibility_timeout=3) as cluster:
        pool = cluster.pool()
        items = counted_items(runs, n, hold, hold_seconds=12, nap=0.05)
        result = pool.starmap(COUNTED, items, chunksize=1)
        assert result == [x * x for x in range(n)]
        assert run_counts(runs) == {str(x): 1 for x in range(n)}


def test_an_entry_left_in_kombus_unacked_hash_still_comes_back(tmp_path: Path) -> None:
    """A broker written by a farpool before this consume path may hold kombu's `unacked` entries
    (a worker of it died holding them): a worker of this version returns them to their queue
    once they are older than the visibility timeout, as kombu did."""
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    with EmbeddedServer(address, tmp_path) as server:
        app = create_app(cluster_settings(server.url, tmp_path, visibility_timeout=1))
        queue = app.settings.queue
        try:
            sent = app.send_task("tasks.examples.square", args=[5], queue=queue).id
            with app.connection_for_read() as connection:
                channel = connection.default_channel
                taken = channel.client.rpop(queue)  # the old path: BRPOP, then the record in the hash
                message = channel.Message(json.loads(taken), channel=channel)
                channel.qos.append(message, message.delivery_tag)
                assert channel.client.hlen("unacked") == 1

                def returned() -> bool:
                    channel.qos.restore_visible(num=10, interval=1)
                    return bool(channel.client.llen(queue))

                poll(returned, "the old entry to go back on its queue", timeout=15)
                (back,) = channel.client.lrange(queue, 0, -1)
                channel.qos._delivered.clear()  # the entry is the dead old worker's, not this channel's
            assert json.loads(back)["headers"]["id"] == sent
            assert json.loads(back)["headers"]["redelivered"] is True
            with raw(server.url) as client:
                assert not client.hlen("unacked")
        finally:
            app.close()


def test_a_consumer_of_two_queues_takes_from_both(tmp_path: Path) -> None:
    """BLMOVE waits on one queue at a time: a take that times out on an idle queue must move on
    to the next, or a message on the other queue would wait for ever."""
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    with EmbeddedServer(address, tmp_path) as server:
        app = create_app(cluster_settings(server.url, tmp_path))
        idle, busy = "farpool-idle", "farpool-busy"
        try:
            sent = app.send_task("tasks.examples.square", args=[4], queue=busy).id
            taken: list[Any] = []
            with app.connection_for_read() as connection:
                channel = connection.default_channel
                channel.queue_declare(idle)
                channel.queue_declare(busy)
                for queue in (idle, busy):
                    channel.basic_consume(queue, no_ack=False, callback=taken.append, consumer_tag=queue)

                def drained() -> bool:
                    with contextlib.suppress(TimeoutError, OSError):
                        connection.drain_events(timeout=2)
                    return bool(taken)

                poll(drained, "the message on the second queue to be taken", timeout=20)
                (message,) = taken
                assert message.headers["id"] == sent
                message.ack()
        finally:
            app.close()


def test_a_requeue_that_meets_a_dead_broker_is_retried(tmp_path: Path) -> None:
    """A prefork child dies while the broker is away: Celery's requeue of its message fails. The
    message is still in this live consumer's in-flight list, which no sweep empties: the
    consumer puts it back itself once the broker answers (before, it stayed there for ever)."""
    server, app = broker_and_app(tmp_path)
    queue = app.settings.queue
    try:
        sent = app.send_task("tasks.examples.square", args=[3], queue=queue).id
        taken: list[Any] = []
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            channel.basic_consume(queue, no_ack=False, callback=taken.append, consumer_tag="test")
            poll(lambda: connection.drain_events(timeout=2) or taken, "the message to be taken")
            server.stop()
            (message,) = taken
            message.reject(requeue=True)  # the child was lost; the broker is down
            server.start()

            def back() -> bool:
                farpool_transport.HOLDER.refreshed_at = float("-inf")  # a tick is due
                with contextlib.suppress(redis.ConnectionError):
                    channel.qos.restore_visible(num=10, interval=1)
                with raw(server.url) as client:
                    return bool(client.llen(queue))

            poll(back, "the message to go back on its queue")
            with raw(server.url) as client:
                (message,) = client.lrange(queue, 0, -1)
        assert json.loads(message)["headers"]["id"] == sent
        assert json.loads(message)["headers"]["redelivered"] is True
    finally:
        server.stop()
        app.close()


def test_a_batch_of_publishes_cut_off_by_a_broker_restart_is_sent_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A map's messages go out as one pipeline. The broker is down at the flush: the flush fails
    (kombu raised BatchPublishError, and the map with it); farpool's batch waits for the broker
    and pushes each message that is nowhere, once. One of them is in the queue already, as when
    part of a pipeline reached the server before it went away."""
    server, app = broker_and_app(tmp_path)
    queue = app.settings.queue
    failed = threading.Event()
    real_flush = kombu_redis.PublishBatch.flush

    def flush_noting_failure(batch: Any) -> None:
        try:
            real_flush(batch)
        except Exception:
            failed.set()
            raise

    def restart_after_the_failure() -> None:
        failed.wait(60)
        server.start()

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", flush_noting_failure)
    try:
        with raw(server.url) as client:
            client.config_set("appendfsync", "always")
        first = app.send_task("tasks.examples.square", args=[0], queue=queue).id
        with app.producer_or_acquire() as producer, producer.batch(max_size=1000):
            ids = [first] + [
                app.send_task("tasks.examples.square", args=[x], queue=queue, producer=producer).id
                for x in range(1, 5)
            ]
            app.send_task("tasks.examples.square", args=[0], queue=queue, producer=producer, task_id=first)
            kill_broker(server)
            restart = threading.Thread(target=restart_after_the_failure)
            restart.start()
        restart.join()
        assert failed.is_set()
        with raw(server.url) as client:
            queued = [json.loads(text)["headers"]["id"] for text in client.lrange(queue, 0, -1)]
        assert sorted(queued) == sorted(ids)
    finally:
        server.stop()
        app.close()


def test_a_take_whose_reply_is_lost_is_put_back_by_its_living_consumer(tmp_path: Path) -> None:
    """The broker ran a take (BLMOVE) but its reply never reached the worker (the connection
    died between): the message sits in the in-flight list of a consumer that is alive, so no
    sweep returns it, and the worker never received it. The consumer looks before its next take
    and puts it back; then it takes and delivers it. Before, the map waited for ever (seen once
    in 24 runs of the broker-restart hosts test under load)."""
    server, app = broker_and_app(tmp_path)
    queue = app.settings.queue
    taken: list[Any] = []
    connection = app.connection_for_read()
    try:
        sent = app.send_task("tasks.examples.square", args=[7], queue=queue).id
        channel = connection.default_channel
        client = channel.client
        real_parse = client.parse_response
        lost = []

        def parse_losing_the_first_take(conn: Any, command: str, **options: Any) -> Any:
            reply = real_parse(conn, command, **options)
            if command == "BLMOVE" and reply and not lost:
                lost.append(reply)
                raise redis.ConnectionError("the reply was lost with the connection")
            return reply

        client.parse_response = parse_losing_the_first_take
        channel.basic_consume(queue, no_ack=False, callback=taken.append, consumer_tag="test")
        with contextlib.suppress(redis.ConnectionError):
            connection.drain_events(timeout=10)
        assert lost, "the take ran"
        with raw(server.url) as look:
            held = [
                text
                for consumer in look.smembers(CONSUMERS)
                for text in look.lrange(INFLIGHT_PREFIX + consumer.decode(), 0, -1)
            ]
        assert len(held) == 1 and not taken  # held by a live consumer, never received

        def delivered() -> bool:
            with contextlib.suppress(OSError):
                connection.drain_events(timeout=1)
            return bool(taken)

        poll(delivered, "the message to be put back and delivered", timeout=30)
        assert [message.headers["id"] for message in taken] == [sent]
    finally:
        with contextlib.suppress(Exception):
            connection.release()
        server.stop()
        app.close()
