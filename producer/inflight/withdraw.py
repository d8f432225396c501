"""Take a pool's abandoned messages back out of the queue, so that no worker has to meet them.

A revoked message still sits in the queue until a worker takes it, checks it against its revoked
set and drops it: 10,000 of them kept a worker busy for over a minute, deaf to pings. One script
removes them where they wait instead, atomically, keeping the others in their order; only those
already taken by a worker need a revoke.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery

from tasks.lua import script


def withdraw_queued(app: Celery, queue: str, task_ids: Sequence[str]) -> list[str]:
    """Remove these tasks' messages from `queue`; the ids of those removed (not yet taken)."""
    if not task_ids:
        return []
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel
        removed = script("withdraw")(channel.client, [queue], task_ids)
    return [str(task_id, "utf-8") if isinstance(task_id, bytes) else str(task_id) for task_id in removed]
