"""Queue across the cluster, with multiprocessing's API (and JoinableQueue's task_done).

Items are JSON (tasks/encoding.py), in a Redis list, first in first out. A put on a full queue
and a get on an empty one block on the server: each put wakes one getter, each get (or, for a
reliable queue, each task_done) wakes one putter.

`reliable=True`: a get takes the item on a lease instead of removing it; `task_done()` (by the
same object, in the order of its gets) removes it. An item whose lease ends first, because its
getter died or never called task_done, goes back to the head of the queue for the next get.
"""

from __future__ import annotations

import queue
from typing import Any

from tasks.coordination.base import DEFAULT_LEASE, Deadline, Shared, checked_lease
from tasks.lua import script


class Queue(Shared):
    """A cluster-wide multiprocessing.Queue of JSON items (`maxsize=0`: unbounded)."""

    kind = "queue"

    def __init__(
        self,
        name: str,
        maxsize: int = 0,
        *,
        reliable: bool = False,
        lease: float = DEFAULT_LEASE,
        app: Any = None,
    ) -> None:
        super().__init__(name, app)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"Queue maxsize must be an int, not {maxsize!r}")
        self.maxsize = max(maxsize, 0)
        self.reliable = bool(reliable)
        self.lease = checked_lease(lease)
        self._taken: list[str] = []  # a reliable queue's ids this object got, for task_done
        self._taken_data: list[list[str]] = []  # and the keys of their arrays
        self._undone = 0

    def _keys(self) -> list[str]:
        return [self.key(), self.key(":leased"), self.key(":items"), self.key(":ready"), self.key(":space")]

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        from tasks.payload import encode_item  # tasks.encoding rebuilds these objects: imported late

        items, leased, payloads, ready, space = self._keys()
        settings = self._settings()
        # in a list: a tuple at the top keeps its tag. Raises here, naming the type
        item, data = encode_item(self.client, obj, settings.max_payload, settings.result_expires)
        if data is not None:
            self.client.sadd(self.key(":data"), data)
        deadline = Deadline(timeout if block else 0)
        try:
            while not script("queue_put")(
                self.client, [items, leased, payloads, ready], [item, self.maxsize]
            ):
                if not block or deadline.passed():
                    raise queue.Full
                self.client.blpop([space], timeout=deadline.slice())
        except BaseException:
            if data is not None:
                self._drop_data([data])
            raise

    def _settings(self) -> Any:
        self.client  # noqa: B018 - finds the app
        return self._app.settings

    def _drop_data(self, keys: list[str]) -> None:
        """The arrays of items got for good (tasks/blobs.py): nobody will read them again."""
        if keys:
            self.client.srem(self.key(":data"), *keys)
            self.client.delete(*keys)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        items, leased, payloads, ready, space = self._keys()
        lease = self.lease if self.reliable else 0
        deadline = Deadline(timeout if block else 0)
        while True:
            found = script("queue_get")(
                self.client, [items, leased, payloads, ready, space, self.key(":ids")], [lease]
            )
            if found:
                task_id, item = found
                from tasks.payload import decode_item

                value, data = decode_item(self.client, item, self._settings().max_payload)
                if self.reliable:
                    self._taken.append(task_id.decode() if isinstance(task_id, bytes) else task_id)
                    self._taken_data.append(data)
                else:
                    self._drop_data(data)
                self._undone += 1
                return value
            if not block or deadline.passed():
                raise queue.Empty
            self.client.blpop([ready], timeout=deadline.slice())

    def task_done(self) -> None:
        """The item of this object's oldest get not yet done is handled (reliable: removed)."""
        if self._undone == 0:
            raise ValueError("task_done() called more times than items were got")
        self._undone -= 1
        if self.reliable:
            _, leased, payloads, _, space = self._keys()
            script("queue_done")(self.client, [leased, payloads, space], [self._taken.pop(0)])
            self._drop_data(self._taken_data.pop(0))

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        """Items waiting to be got (a reliable queue's leased items are not counted)."""
        return int(self.client.llen(self.key()))

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        if self.maxsize == 0:
            return False
        size = script("queue_size")(self.client, [self.key(), self.key(":leased")])
        return int(size) >= self.maxsize

    def close(self) -> None:
        """multiprocessing's: nothing is buffered in this process, so nothing to flush."""

    def join_thread(self) -> None:
        """multiprocessing's: there is no feeder thread to wait for."""

    def delete(self) -> None:
        """Remove the queue and everything in it, for every user of its name."""
        data = [key.decode() for key in self.client.smembers(self.key(":data"))]
        self.client.delete(*self._keys(), self.key(":ids"), self.key(":data"), *data)

    def __json__(self) -> dict[str, Any]:
        return {"name": self.name, "maxsize": self.maxsize, "reliable": self.reliable, "lease": self.lease}
