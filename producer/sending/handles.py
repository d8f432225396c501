"""`pool.put(value)`: a value stored once, passed to any number of tasks by its handle.

Each worker process reads it at most once (tasks/payload.py keeps it); it is deleted when its
pool is terminated (or leaves `with`), or by `handle.delete()`; `pool.detach()` leaves it for
another process; it expires with the results (FARPOOL_RESULT_EXPIRES) at the latest.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from producer.sending.shared_arrays import SharedArrays
from tasks import encoding
from tasks.blobs import ARGUMENT_FIELDS, HANDLE_VALUE, Handle, claim, store
from tasks.payload import externalize


class PutHandle(Handle):
    """What `pool.put` returns: pass it in a call's arguments; `delete()` when no task needs it."""

    __slots__ = ("_store",)

    def __init__(self, handle_id: str, owner: HandleStore) -> None:
        super().__init__(handle_id)
        self._store = owner

    def delete(self) -> None:
        """Delete the value now: a task that receives this handle later fails, naming it."""
        self._store.delete(self)


class HandleStore:
    """The values a pool put, until they are deleted."""

    def __init__(self, client: Any, expires: int, max_payload: int, shared: SharedArrays) -> None:
        self._client, self._expires, self._max_payload = client, expires, max_payload
        self._shared = shared
        self._live: set[str] = set()
        self._lock = threading.Lock()

    def put(self, value: Any) -> PutHandle:
        handle_id = f"put-{uuid.uuid4().hex}"
        value, refs = externalize(value, self._max_payload, "the value given to put()")
        pairs = claim(refs, handle_id, ARGUMENT_FIELDS)
        shared = bool(refs) and self._shared.wanted()
        if shared:
            self._shared.share(handle_id, refs)
        text = encoding.dumps([value])  # a TypeError here names what JSON cannot carry
        store(self._client, handle_id, [(HANDLE_VALUE, text), *([] if shared else pairs)], self._expires)
        for ref in refs:
            ref.data = None
        with self._lock:
            self._live.add(handle_id)
        return PutHandle(handle_id, self)

    def delete(self, handle: Handle) -> None:
        with self._lock:
            self._live.discard(handle.id)
        self._client.delete(handle.key)
        self._shared.release([handle.id])

    def delete_all(self) -> None:
        with self._lock:
            live, self._live = sorted(self._live), set()
        if live:
            self._client.delete(*(Handle(handle_id).key for handle_id in live))
            self._shared.release(live)
