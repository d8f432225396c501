"""A pool's arrays: how its calls' arrays are stored before sending, whether results come back in
memory files, its `put` values, and what is released when calls end or the pool does."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.canvas import Signature

from config import Settings
from producer.sending.handles import HandleStore, PutHandle
from producer.sending.outgoing import store_arrays
from producer.sending.shared_arrays import SharedArrays, worker_machines
from tasks.arrays import ArrayRef
from tasks.held import reply_header


class PoolArrays:
    """The arrays side of one pool, given its results' Redis client."""

    def __init__(self, app: Celery, settings: Settings, client: Any) -> None:
        machines = functools.partial(worker_machines, app, settings.queue)
        self.shared = SharedArrays(machines, enabled=settings.shared_memory == "auto")
        self._client, self._expires = client, settings.result_expires
        self.max_payload = settings.max_payload
        self._handles = HandleStore(client, self._expires, self.max_payload, self.shared)

    def release(self, task_ids: Sequence[str]) -> None:
        """These calls were collected or abandoned (the ledger says): their memory files go."""
        self.shared.release(task_ids)

    def store(self, owner: str, refs: Sequence[ArrayRef]) -> None:
        """The bytes of a message's arrays, stored under its task id before it is sent."""
        store_arrays(self._client, owner, refs, self._expires, self.shared)

    def reply_in_memory(self, signatures: Sequence[Signature]) -> None:
        """Calls only this pool collects: a worker on this machine may hold their result arrays in
        memory for it (tasks/held.py) instead of storing them in Redis."""
        if self.shared.wanted():
            header = reply_header()
            for signature in signatures:
                signature.options["headers"] = header

    def apply_headers(self, recorded: bool) -> dict[str, Any]:
        """An apply's message headers: results in memory when only this pool collects it."""
        return reply_header() if not recorded and self.shared.wanted() else {}

    def put(self, value: Any) -> PutHandle:
        return self._handles.put(value)

    def delete_values(self) -> None:
        """The pool ends: its put values go."""
        self._handles.delete_all()

    def close(self, keep: bool) -> None:
        """Close the memory files; `keep`: copy what they hold into Redis first (detach)."""
        if keep:
            self.shared.spill(self._client, self._expires)
        self.shared.close()
