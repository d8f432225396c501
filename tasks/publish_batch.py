"""A producer's batch of messages that survives a broker restart in the middle of its flush.

kombu sends a batch of publishes as one pipeline and, when that fails, raises BatchPublishError
("delivery is uncertain"): the server may have run some of the LPUSHes before it went away.
A map sent while the broker restarts then failed with it. This batch keeps what it buffered
and, once the broker answers again (within `publish_patience` seconds), pushes each message
that is nowhere: not queued, held by no consumer (tasks/inflight.py), not in kombu's unacked
hash. One script decides and pushes, so a message is never pushed twice; a task that ran and
was acknowledged between the failure and the retry is pushed again (its second result is one
more store of the same key; the producer delivers each result once).
"""

from __future__ import annotations

import time
from typing import Any

from kombu.exceptions import BatchPublishError
from kombu.transport import redis as kombu_redis

from tasks.lua import script
from tasks.wire import CONSUMERS, INFLIGHT_PREFIX, UNACKED

RETRY_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


class SurvivingPublishBatch(kombu_redis.PublishBatch):
    def __init__(self, channel: Any, max_size: int, patience: float) -> None:
        super().__init__(channel, max_size)
        self._patience = patience
        self._pushes: list[tuple[str, str]] = []  # (queue, message) buffered since the last flush

    def add(self, name: str, *args: Any) -> None:
        super().add(name, *args)
        if name == "lpush":
            self._pushes.append((str(args[0]), str(args[1])))

    def flush(self) -> None:
        try:
            super().flush()
        except BatchPublishError as error:
            if not isinstance(error.__cause__, self.channel.connection_errors):
                raise
            self._push_missing(error)
        self._pushes.clear()

    def _push_missing(self, error: BatchPublishError) -> None:
        deadline = time.monotonic() + self._patience
        backoff = iter(RETRY_BACKOFF)
        while True:
            try:
                with self.channel.conn_or_acquire() as client:
                    for queue in {queue for queue, _ in self._pushes}:
                        pairs = [
                            part for q, raw in self._pushes if q == queue for part in (task_id(raw), raw)
                        ]
                        script("push_missing")(client, [queue, UNACKED, CONSUMERS], [INFLIGHT_PREFIX, *pairs])
            except self.channel.connection_errors:
                if time.monotonic() >= deadline:
                    raise error from None
                time.sleep(next(backoff, RETRY_BACKOFF[-1]))
                continue
            self._failed = None  # usable again: the next publishes go in a fresh pipeline
            return


def task_id(raw: str) -> str:
    """The task id a kombu message carries (Celery's protocol 2 header), or the message itself."""
    from kombu.utils.json import loads

    try:
        return str(loads(raw)["headers"]["id"])
    except (KeyError, TypeError, ValueError):
        return raw
