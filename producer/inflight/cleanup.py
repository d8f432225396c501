"""What a pool's given-up tasks leave on the server: deleted now, or dropped when they store.

Abandoned tasks (a failed map's other chunks, terminate(), an imap closed early) lose what they
stored and their arrays' bytes; those still queued are taken back out of the queue; those still
running are revoked, and whatever they store later is dropped (tasks/backend.py's marks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Celery

from tasks.blobs import data_keys
from tasks.wire import KEY_BATCH, REVOKE_COMMAND, record_key

Withdraw = Callable[[Sequence[str]], list[str]]  # takes queued tasks back; returns those it took


def delete_keys(client: Any, keys: Sequence[str | bytes]) -> None:
    for start in range(0, len(keys), KEY_BATCH):
        client.delete(*keys[start : start + KEY_BATCH])


def drop_abandoned(
    app: Celery,
    task_ids: Sequence[str],
    records: Iterable[str],
    arrived: set[str],
    remember: int,
    withdraw: Withdraw | None,
    terminate: bool,
) -> list[str]:
    """Drop these abandoned tasks' traces on the server (records: their map_async calls); return
    those still running, which were revoked (`terminate`: their processes killed)."""
    backend: Any = app.backend
    records = list(records)
    stored: list[str | bytes] = [record_key(record_id) for record_id in records]
    stored += [backend.get_key_for_task(task_id) for task_id in arrived]
    stored += data_keys(task_ids)  # their arrays: a task still running has read its own already
    delete_keys(backend.client, stored)
    pending = [task_id for task_id in task_ids if task_id not in arrived]
    in_flight: list[str] = backend.discard(pending, remember) if pending else []
    for record_id in records:  # a map_async's chord: its withdrawn parts will never return
        backend.abandon_chord(record_id, remember)
    if in_flight and withdraw is not None:
        withdrawn = set(withdraw(in_flight))
        backend.withdrawn(sorted(withdrawn))
        in_flight = [task_id for task_id in in_flight if task_id not in withdrawn]
    if in_flight:
        app.control.broadcast(REVOKE_COMMAND, arguments={"task_id": in_flight, "terminate": terminate})
    return in_flight
