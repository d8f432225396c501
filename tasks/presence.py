"""Workers announce themselves: a producer knows the cluster in one round trip, without a broadcast.

A control broadcast cannot know how many workers will answer, so it always waits out its
timeout (1 s). Instead, each worker's consumer keeps an entry in `farpool-workers:<queue>`
(a sorted set scored by when the entry expires, by the server's clock) and its description in
`farpool-workers:<queue>:info` (a hash), refreshed every ANNOUNCE_INTERVAL seconds. A worker
that stops removes its entry; one that dies or is cut off drops out after ANNOUNCE_TTL seconds,
and both keys expire that long after the last worker's announcement.
The scripts use the server's TIME, so hosts' clocks need not agree.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

from celery.worker import state as worker_state
from celery.worker.consumer.tasks import Tasks

from tasks.contract import is_internal
from tasks.hardware import describe_hardware
from tasks.lua import script
from tasks.shared_memory import machine_id
from tasks.steps import RepeatingStep
from tasks.wire import PRESENCE_PREFIX, WorkerDescription

logger = logging.getLogger(__name__)
ANNOUNCE_INTERVAL = 2.0
ANNOUNCE_TTL = 10


def presence_keys(queue: str) -> list[str]:
    return [f"{PRESENCE_PREFIX}{queue}", f"{PRESENCE_PREFIX}{queue}:info"]


def live_workers(client: Any, queue: str) -> list[WorkerDescription]:
    """The descriptions of the workers announced on `queue` and not expired."""
    found = script("live_workers")(client, presence_keys(queue))
    return [json.loads(text) for text in found if text]


def withdraw(client: Any, queue: str, name: str) -> None:
    """Remove worker `name`'s announcement on `queue`, as its warm shutdown does."""
    script("leave")(client, presence_keys(queue), [name])


def running_function(name: str, label: str) -> str:
    """The function a running request calls: from farpool's label (`square × 3 items [chunk
    1/5]`, `square(…)`) for its executors, the task's own name otherwise."""
    if is_internal(name) and label:
        return label.split(" × ", 1)[0].removesuffix("(…)")
    return name


def describe(consumer: Any) -> WorkerDescription:
    """Pool type and size, consumed queues, tasks, what runs now, and the host's cores (physical,
    logical), CPU model, caches, load and memory (tasks/hardware.py): what a producer and
    `farpool cluster` need to know of this worker without asking it."""
    hardware = describe_hardware()
    pool_info = consumer.pool.info if consumer.pool is not None else {}
    task_consumer = consumer.task_consumer
    return {  # type: ignore[typeddict-item]  # the hardware fields come from describe_hardware
        "name": consumer.hostname,
        "host": socket.gethostname(),
        "machine": machine_id(),  # a producer with the same id shares arrays in memory with it
        "pool": str(pool_info.get("implementation", "?")).split(":")[0].rsplit(".", 1)[-1],
        "processes": int(pool_info.get("max-concurrency", 0)),
        "queues": sorted(queue.name for queue in task_consumer.queues) if task_consumer else [],
        "tasks": sorted(name for name in consumer.app.tasks if not is_internal(name)),
        "allowlist": list(getattr(consumer.app, "allowlist", ())),
        "running": [
            running_function(request.name, request.argsrepr) for request in list(worker_state.active_requests)
        ],
        "cores": hardware["logical_cpus"],
        "load": list(os.getloadavg()),
        **hardware,
    }


class Presence(RepeatingStep):
    """The consumer step that announces this worker on its queues until it stops."""

    requires = (Tasks,)
    interval = ANNOUNCE_INTERVAL

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.description: dict[str, Any] = {}

    def tick(self, c: Any) -> None:
        """The worker's description, what it runs and its host's load included, for ANNOUNCE_TTL s."""
        try:
            self.description = describe(c)
        except Exception as error:  # keep announcing the last description
            logger.debug("could not describe this worker: %s", error)
        text = json.dumps(self.description)
        try:
            client = c.app.backend.client
            for queue in self.description["queues"]:
                script("announce")(client, presence_keys(queue), [c.hostname, text, ANNOUNCE_TTL])
        except Exception as error:  # the broker is away: the next announcement tries again
            logger.debug("could not announce this worker: %s", error)

    def stop(self, c: Any) -> None:
        super().stop(c)
        try:
            client = c.app.backend.client
            for queue in self.description.get("queues", ()):
                withdraw(client, queue, c.hostname)
        except Exception as error:
            logger.debug("could not withdraw this worker's announcement: %s", error)

    shutdown = stop
