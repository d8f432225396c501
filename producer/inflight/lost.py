"""Which of a pool's tasks the broker no longer has: after a failover, or a restart that kept nothing.

Redis replicates asynchronously: a replica promoted by Sentinel may lack the last writes its
master acknowledged, and a server restarted without persistence has none. A task sent by this
pool is then nowhere: not queued, not held by a worker (kombu keeps what a worker took in its
`unacked` hash until the ack, which farpool sends only after the result is stored), and with no
result. Waiting for it would wait for ever. The ledger asks this module when the server it
talks to has changed (another run id), twice a second apart, since a worker's take and its
`unacked` entry are two commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from tasks.lua import script
from tasks.wire import UNACKED


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
        found = script("missing")(client, [queue, UNACKED], waiting)
    return sorted(str(task_id, "utf-8") if isinstance(task_id, bytes) else str(task_id) for task_id in found)
