"""When a local worker is up, and stopping a pool's own worker quickly, both read from its
announcement (tasks/presence.py).

A worker announces itself when its consumer starts, after its queue and remote control: one
Redis read every POLL_INTERVAL s finds it within that time. A ping broadcast waits its whole
timeout for replies (0.5 s) each time it asks, and found the worker about 0.5 s late.

A pool's own worker serves that pool alone and is stopped once its work is collected or
revoked: a warm shutdown then spends about 2 s closing the prefork pool and its children
(billiard's joins), for nothing. It is killed at once instead (SIGKILL, its prefork children
with it), and its announcement withdrawn as its warm shutdown would have, so no producer takes
it for alive: about 5 ms.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from celery import Celery

from producer.local.children import ChildProcess
from tasks.presence import live_workers, withdraw

POLL_INTERVAL = 0.02


def _client(app: Celery) -> Any:
    return cast(Any, app.backend).client


def _named(app: Celery, queue: str, node: str) -> list[str]:
    """The announced workers on `queue` whose names contain `node`."""
    try:
        names = [str(found.get("name", "")) for found in live_workers(_client(app), queue)]
    except (redis.RedisError, OSError):
        return []
    return [name for name in names if node in name]


def wait_announced(app: Celery, queue: str, node: str, worker: ChildProcess, timeout: float) -> bool:
    """Poll until `worker` is announced (True), it exits (FarpoolError) or `timeout` s pass."""
    return worker.wait_ready(lambda: bool(_named(app, queue, node)), timeout, interval=POLL_INTERVAL)


def wait_answering(app: Celery, queue: str, node: str, worker: ChildProcess, timeout: float) -> bool:
    """Poll until announced `worker` answers a remote-control ping (True), exits or `timeout` s pass.

    Its announcement comes as its consumer starts; its control replies once its event loop
    reads the control channel, a moment later. Flower's first look at the workers (four
    inspect calls of 1 s each, as it starts) needs the replies: started beside a worker still
    starting, Flower logged `Inspect method ... failed` four times (tests/test_flower.py).
    """

    def answers() -> bool:
        names = _named(app, queue, node)
        try:
            return bool(names) and bool(app.control.ping(destination=names, timeout=0.5, limit=len(names)))
        except (redis.RedisError, OSError):
            return False

    return worker.wait_ready(answers, timeout, interval=POLL_INTERVAL)


def stop_quickly(app: Celery, queue: str, node: str, worker: ChildProcess) -> None:
    """SIGKILL `worker` and its process group, and withdraw its announcement."""
    worker.kill()
    for name in _named(app, queue, node):
        try:
            withdraw(_client(app), queue, name)
        except (redis.RedisError, OSError):  # the broker is gone: the entry expires by itself
            return
