"""Which of a pool's tasks the broker no longer has: after a failover, or a restart that kept nothing.

Redis replicates asynchronously: a replica promoted by Sentinel may lack the last writes its
master acknowledged, and a server restarted without persistence has none. A task sent by this
pool is then nowhere: not queued, not held by a worker (kombu keeps what a worker took in its
`unacked` hash until the ack, which farpool sends only after the result is stored), and with no
result. Waiting for it would wait for ever. So is a task removed by `celery purge`, a FLUSHDB or
a DEL of the queue, on the same server. The ledger asks this module (`LostLook`) when the server
it talks to has changed (another run id), and whenever nothing it waits for has arrived for
STALL_SECONDS; a task is lost when two looks, LOST_RECHECK apart, find it nowhere. A worker
holds what it took in its own in-flight list (tasks/inflight.py), moved there by the take
itself; kombu's `unacked` hash holds what a worker of a farpool before it took, and what was
taken outside that path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Celery

from tasks.lua import script
from tasks.wire import CONSUMERS, INFLIGHT_PREFIX, UNACKED

logger = logging.getLogger("farpool")


def missing_tasks(app: Celery, queue: str, task_ids: Sequence[str]) -> list[str]:
    """The tasks among `task_ids` that have no result, are not queued and no worker holds."""
    if not task_ids:
        return []
    backend: Any = app.backend
    stored = backend.client.mget([backend.get_key_for_task(task_id) for task_id in task_ids])
    waiting = [task_id for task_id, value in zip(task_ids, stored, strict=True) if value is None]
    if not waiting:
        return []
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel
        client = channel.client
        found = script("missing")(client, [queue, UNACKED, CONSUMERS], [INFLIGHT_PREFIX, *waiting])
    found = [str(task_id, "utf-8") if isinstance(task_id, bytes) else str(task_id) for task_id in found]
    if not found:
        return []
    # A task that ended between the first read and the script stored its result before its ack.
    stored = backend.client.mget([backend.get_key_for_task(task_id) for task_id in found])
    return sorted(task_id for task_id, value in zip(found, stored, strict=True) if value is None)


FindMissing = Callable[[Sequence[str]], list[str]]
LOST_RECHECK = 1.0  # seconds between the two looks that must both find a task nowhere
STALL_SECONDS = 3.0  # nothing arrived for this long: look whether the broker still has the tasks
LOOK_AT_MOST_EVERY = 10.0  # while stalled, the looks space out to this (each reads the queue)


def server_run_id(client: Any) -> str:
    """The run id of a server: another one after a failover or a restart."""
    return str(client.info("server").get("run_id", ""))


def looked_for(awaited: Iterable[Any], sent_before: float | None) -> list[str]:
    """The ids of the awaited calls (ledger.Expected) that a producer has sent: attached ones,
    and this pool's own expected before `sent_before` (publishing.all_sent_before)."""
    return [
        expected.task_id
        for expected in awaited
        if expected.queued and (not expected.owned or (sent_before or 0.0) > expected.since)
    ]


class LostLook:
    """When to look for lost tasks, and the looking: after the server changed, and when stalled.

    A look reads the whole queue in one script, so while the wait goes on (long chunks, say) the
    looks space out from STALL_SECONDS to LOOK_AT_MOST_EVERY; any arrival starts over.
    """

    def __init__(self, find_missing: FindMissing | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._find_missing = find_missing
        self._clock = clock
        self._interval = STALL_SECONDS
        self._next_look = clock() + STALL_SECONDS

    def progressed(self) -> None:
        """Something this pool waited for arrived (or was sent): no look for STALL_SECONDS."""
        self._interval = STALL_SECONDS
        self._next_look = self._clock() + STALL_SECONDS

    def stalled(self, waiting: Callable[[], Sequence[str]]) -> list[str]:
        """The tasks lost, if nothing has arrived for a while; [] otherwise (cheap to call often)."""
        if self._find_missing is None or self._clock() < self._next_look:
            return []
        self._next_look = self._clock() + self._interval
        self._interval = min(self._interval * 2, LOOK_AT_MOST_EVERY)
        ids = waiting()
        return self.missing(ids) if ids else []

    def missing(self, task_ids: Sequence[str]) -> list[str]:
        """The tasks two looks, LOST_RECHECK apart, find nowhere (a broker error: none)."""
        if self._find_missing is None:
            return []
        try:
            missing = self._find_missing(task_ids)
            if missing:
                time.sleep(LOST_RECHECK)
                missing = self._find_missing(missing)
        except Exception as error:  # the broker is away: the listener's own checks report that
            logger.debug("could not look for lost tasks: %s", error)
            return []
        return missing
