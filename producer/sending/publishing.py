"""Sending farpool's messages: batched, and without Celery's per-message result subscriptions."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from tasks.backend import without_result_subscriptions

BATCH_OPERATIONS = 2_000  # Redis commands per round trip: a message is an LPUSH and its task-sent event


class _Sends:
    """This process's sends on one app: how many are under way, and when none last was."""

    def __init__(self) -> None:
        self.running = 0
        self.quiet_since = time.monotonic()


_sends: weakref.WeakKeyDictionary[Celery, _Sends] = weakref.WeakKeyDictionary()
_sends_lock = threading.Lock()


def all_sent_before(app: Celery) -> float | None:
    """A time (time.monotonic) before which every message this process meant to send on `app`
    went out, or None while a send is under way: a call expected earlier is queued or done."""
    with _sends_lock:
        sends = _sends.get(app)
        if sends is None:
            return time.monotonic()
        return None if sends.running else sends.quiet_since


@contextmanager
def under_way(app: Celery) -> Iterator[None]:
    with _sends_lock:
        sends = _sends.setdefault(app, _Sends())
        sends.running += 1
    try:
        yield
    finally:
        with _sends_lock:
            sends.running -= 1
            if not sends.running:
                sends.quiet_since = time.monotonic()


@contextmanager
def sending(app: Celery) -> Iterator[Any]:
    """A producer whose publishes go out in pipelined batches (kombu's Producer.batch).

    A map of n chunks costs one round trip per thousand messages instead of two per message.
    Pass it as `producer=` to apply_async; the batch is flushed when the block ends.
    Task-sent events go out only while a monitor watches the cluster (tasks/watch.py).
    """
    sent_events = getattr(app, "sent_events", None)
    if sent_events is not None:
        sent_events.follow(app)
    with (
        under_way(app),
        without_result_subscriptions(),
        app.producer_or_acquire() as producer,
        producer.batch(max_size=BATCH_OPERATIONS),
    ):
        yield producer
