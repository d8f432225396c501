"""Task events only while a monitor watches (tasks/watch.py); Flower's own test is test_flower.py.

Events are read straight off the broker (kombu's fanout channels for the `celeryev` exchange),
not through a Celery event receiver: this app's receiver would mark the cluster as watched.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import Cluster
from helpers import poll

from tasks.examples import square
from tasks.watch import mark_watched
from tasks.wire import WATCH_KEY

pytestmark = pytest.mark.integration


@contextmanager
def task_events(cluster: Cluster) -> Iterator[list[str]]:
    """The types of the task events published while the block runs (task-received, …)."""
    pubsub: Any = cluster.app.backend.client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("/*.celeryev/task.*")
    seen: list[str] = []
    try:
        yield seen
    finally:
        # the events of the block's last task may still be on their way: read for another second
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                seen += event_types(message["data"])
        pubsub.close()


def event_types(data: bytes) -> list[str]:
    """The types of the events in one kombu message (a worker batches its task events)."""
    envelope = json.loads(data)
    text = envelope["body"]
    if envelope["properties"].get("body_encoding") == "base64":
        text = base64.b64decode(text)
    body = json.loads(text)
    return [event["type"] for event in (body if isinstance(body, list) else [body])]


def a_map_sends(cluster: Cluster) -> list[str]:
    with task_events(cluster) as seen, cluster.pool() as pool:
        assert pool.map(square, range(6), chunksize=2) == [x * x for x in range(6)]
    return seen


def test_nobody_watching_no_task_events_a_monitor_opens_every_chunk_is_seen(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    poll(lambda: not client.exists(WATCH_KEY), "an earlier monitor's mark to expire", timeout=30)
    poll(lambda: not a_map_sends(cluster), "the workers to stop sending task events", timeout=30)

    mark_watched(cluster.app)  # what Flower does when it opens, and every 5 s while it runs
    seen = a_map_sends(cluster)  # workers turn task events on at once
    assert seen.count("task-received") == 3 and seen.count("task-succeeded") == 3, seen
    # a producer looks at most every CHECK_INTERVAL s: its task-sent events follow within that
    poll(lambda: a_map_sends(cluster).count("task-sent") == 3, "the producer's task-sent events")

    client.delete(WATCH_KEY)  # the monitor went away and its mark expired
    poll(lambda: not a_map_sends(cluster), "the workers to stop sending task events once unwatched")
