"""What a map puts on the queue: each chunk's message stays small however many chunks there are."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from conftest import Cluster
from faults_support import fault_cluster

from producer.sending.publishing import sending

pytestmark = pytest.mark.integration


def test_map_async_messages_do_not_grow_with_the_number_of_chunks(tmp_path: Path) -> None:
    """A chord copies its body into every chunk's message: a body that carried the chunk ids
    made each message grow with the map (10,000 chunks: 535 KB each)."""
    with fault_cluster(tmp_path, workers=1) as cluster:
        pool = cluster.pool()
        cluster.kill_worker(cluster.workers[0])  # the messages stay queued, to be measured
        sizes = {}
        with redis.Redis.from_url(cluster.settings.broker_url) as client:
            for chunks in (10, 1000):
                pool.map_async("tasks.examples.square", range(chunks), chunksize=1)
                sizes[chunks] = max(len(message) for message in client.lrange(cluster.settings.queue, 0, -1))
                client.delete(cluster.settings.queue)
        assert sizes[1000] < sizes[10] + 100, sizes
        pool.terminate()


def test_a_producers_messages_go_out_in_pipelined_batches(cluster: Cluster) -> None:
    """kombu batches a producer's publishes only where its channel says it safely can."""
    with cluster.app.connection_for_write() as connection:
        assert connection.default_channel.supports_batch_publish


def test_a_message_body_is_json_text_not_base64(cluster: Cluster) -> None:
    """kombu's Redis transport wraps each body in base64 by default: a third more bytes."""
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    client = cluster.app.backend.client
    with sending(cluster.app) as producer:
        cluster.app.send_task("tasks.examples.square", args=[7], queue=queue, producer=producer)
    try:
        (raw,) = client.lrange(queue, 0, -1)
        message = json.loads(raw)
        assert message["properties"].get("body_encoding") is None
        assert json.loads(message["body"])[0] == [7]
    finally:
        client.delete(queue)
