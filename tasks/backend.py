"""Celery's Redis result backends, minus the subscriptions farpool's own sends do not need.

Stock Celery subscribes the sending process to each task's result channel as it sends it
(`on_task_call`), and a GroupResult subscribes each of its members (`then`). farpool's
producer collects results with one listener of its own (producer/hub.py), so for its sends
those subscriptions would only cost a round trip per message. A plain Celery
`AsyncResult.get()` still subscribes when it is called.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.backends.redis import RedisBackend, SentinelBackend

_quiet = threading.local()


@contextmanager
def without_result_subscriptions() -> Iterator[None]:
    """Within this block, results created by sends in this thread are not subscribed to."""
    _quiet.active = True
    try:
        yield
    finally:
        _quiet.active = False


class _CollectedElsewhere:
    def on_task_call(self, producer: Any, task_id: str) -> None:
        if not getattr(_quiet, "active", False):
            super().on_task_call(producer, task_id)  # type: ignore[misc]

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        if getattr(_quiet, "active", False):
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)  # type: ignore[misc]


class FarpoolRedisBackend(_CollectedElsewhere, RedisBackend):
    """redis:// and rediss:// results."""


class FarpoolSentinelBackend(_CollectedElsewhere, SentinelBackend):
    """sentinel:// results."""


def backend_setting(url: str) -> str:
    """Celery's `result_backend` value selecting farpool's class for this URL."""
    backend = FarpoolSentinelBackend if url.startswith("sentinel://") else FarpoolRedisBackend
    return f"{__name__}:{backend.__name__}+{url}"
