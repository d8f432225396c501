"""One pub/sub listener per pool that learns of finished tasks the moment they are stored.

Celery's Redis backend stores a result with SET and PUBLISH on the same key. The hub
subscribes to the keys of the tasks it watches, then reads them once with MGET for any
that finished before the subscription: no polling interval anywhere. After a reconnect it
reads all watched keys again, since messages published while disconnected are gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis
from celery import Celery, states

OnReady = Callable[[str, dict[str, Any]], None]
logger = logging.getLogger("farpool")
KEY_BATCH = 10_000  # keys per DEL or MGET
RECONNECT_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


class ResultHub:
    """Calls a callback once per watched task id, with its meta, when the task is ready."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.backend = app.backend
        self.client: redis.Redis = self.backend.client
        self._watchers: dict[bytes, tuple[str, OnReady]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._resync = False
        self._wake_channel = f"farpool-hub-{uuid.uuid4().hex}"
        self._pubsub = self._new_pubsub()
        self._thread = threading.Thread(target=self._listen, name="farpool-results", daemon=True)
        self._thread.start()

    def _new_pubsub(self) -> Any:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(self._wake_channel)
        pubsub.connection.register_connect_callback(self._on_reconnect)
        return pubsub

    def _on_reconnect(self, connection: Any) -> None:
        self._resync = True

    def key(self, task_id: str) -> bytes:
        key: bytes = self.backend.get_key_for_task(task_id)
        return key

    def watch(self, task_ids: Iterable[str], on_ready: OnReady) -> None:
        """Call on_ready(task_id, meta) once for each task as soon as it is ready."""
        keys = {self.key(task_id): task_id for task_id in task_ids}
        if not keys:
            return
        with self._lock:
            for key, task_id in keys.items():
                self._watchers[key] = (task_id, on_ready)
            self._pubsub.subscribe(*keys)
        self._read_stored(list(keys))

    def unwatch(self, task_ids: Iterable[str]) -> None:
        keys = [self.key(task_id) for task_id in task_ids]
        with self._lock:
            for key in keys:
                self._watchers.pop(key, None)
            if keys and not self._closed:
                self._pubsub.unsubscribe(*keys)

    def delete(self, task_ids: Iterable[str]) -> None:
        """Remove these results from the backend."""
        keys = [self.key(task_id) for task_id in task_ids]
        for start in range(0, len(keys), KEY_BATCH):
            self.client.delete(*keys[start : start + KEY_BATCH])

    def discard(self, task_ids: Sequence[str], pending: Sequence[str] | None = None) -> None:
        """Stop watching these tasks and delete their results, now and, for the `pending` ones
        (default: all) that are revoked or still running, whenever they store one later."""
        self.unwatch(task_ids)
        self.delete(task_ids)
        later = task_ids if pending is None else pending
        if later:
            self.watch(later, lambda task_id, meta: self.delete([task_id]))

    @staticmethod
    def _map_key(map_id: str) -> str:
        return f"farpool-map-{map_id}"

    def save_map(self, map_id: str, chunk_ids: list[str], expires: int) -> None:
        """Record a map_async's chunk ids, so that result(map_id) finds them from any process."""
        self.client.set(self._map_key(map_id), json.dumps(chunk_ids), ex=expires)

    def saved_map(self, map_id: str) -> list[str] | None:
        stored = self.client.get(self._map_key(map_id))
        return None if stored is None else list(json.loads(stored))

    def forget_map(self, map_id: str) -> None:
        self.client.delete(self._map_key(map_id))

    def _read_stored(self, keys: list[bytes]) -> None:
        for start in range(0, len(keys), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            for key, payload in zip(batch, self.client.mget(batch), strict=True):
                if payload is not None:
                    self._deliver(key, payload)  # type: ignore[arg-type]

    def _deliver(self, key: bytes, payload: bytes) -> None:
        try:
            meta = self.backend.decode_result(payload)
        except Exception as error:
            meta = {"status": states.FAILURE, "result": error, "traceback": None}
        if meta["status"] not in states.READY_STATES:
            return
        with self._lock:
            watcher = self._watchers.pop(key, None)
            if watcher is not None and not self._closed:
                self._pubsub.unsubscribe(key)
        if watcher is not None:
            task_id, on_ready = watcher
            try:
                on_ready(task_id, meta)
            except Exception:  # a user's callback raised: log it, keep listening for the others
                logger.exception("a result callback for task %s raised", task_id)

    def _listen(self) -> None:
        backoff = iter(RECONNECT_BACKOFF)
        while not self._closed:
            try:
                message = self._pubsub.get_message(timeout=1.0)
                backoff = iter(RECONNECT_BACKOFF)
                if self._resync:
                    self._resync = False
                    with self._lock:
                        keys = list(self._watchers)
                    self._read_stored(keys)
                if message is not None and message["type"] == "message":
                    self._deliver(bytes(message["channel"]), bytes(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if self._closed:
                    return
                self._resync = True
                time.sleep(next(backoff, RECONNECT_BACKOFF[-1]))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(redis.RedisError):
            self.client.publish(self._wake_channel, b"close")
        self._thread.join(timeout=5)
        self._pubsub.close()
