"""Celery's Redis result backends, with two changes for farpool.

1. Discarded results are never stored. A producer that gives up on tasks (a failed map's
   other chunks, terminate(), an imap closed early) calls `discard`: results already stored
   are deleted, and the others are remembered in one sorted set, so that whichever worker
   stores one later (the chunk was running, or stores REVOKED when it meets the revoked
   message) drops it instead, in the same atomic script. Those still in flight are revoked
   with REVOKE_COMMAND (tasks/control.py), which, unlike Celery's revoke, stores nothing.
   A mark goes with the store it drops, or when its message is withdrawn from the queue
   (`withdrawn`), or with its abandoned chord (`forget_chord`): nothing is left for a day.
2. A chunk runs twice when its message is redelivered (its worker was cut off or lost power
   long enough for its liveness key to expire, tasks/inflight.py) and both runs may store:
   only the first store is kept. The
   redelivered run marks its task as *twinned* when it starts (`expect_twin`); whichever run
   stores first turns the mark to "stored", so the other run's store is dropped (and the mark
   with it), even after the producer collected the first result and deleted it. A mark whose
   other run never stores (its host lost power) expires by itself a visibility timeout and a
   worker's store retries after the redelivery (a cut-off run longer than that could still
   store late: its result would then be a stray key, expiring with FARPOOL_RESULT_EXPIRES).
3. No per-message subscriptions for farpool's own sends. Stock Celery subscribes the sending
   process to each task's result channel as it sends it (`on_task_call`) and a GroupResult
   subscribes each member (`then`); farpool's producer collects with one listener of its own
   (producer/inflight/ledger.py), so those would cost a round trip per message. A plain Celery
   `AsyncResult.get()` still subscribes when it is called.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import redis
from celery import states
from celery.backends.redis import RedisBackend, SentinelBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

from config import mask_url
from tasks.blobs import data_key
from tasks.contract import GATHER
from tasks.lua import script
from tasks.payload import pending_results
from tasks.transport import no_retries
from tasks.wire import DISCARDED, KEY_BATCH, TWIN_PREFIX

# How long after a redelivered run starts the other run may still store, beyond the visibility
# timeout (the longest chunk a deployment expects): a worker retries a result store for up to
# about 60 × (1 + 2 × 3) s.
STORE_RETRY_SECONDS = 420
CHORD_PART_PATIENCE = 60.0  # seconds a map_async's part waits for a restarted broker to count it
CHORD_PART_BACKOFF = 0.5
# A dropped store keeps its reason (discarded, twinned) this long: the same store replayed after
# its reply was lost (a worker reconnecting after a cut) is dropped again.
REPLAY_GRACE = 60
# A chord's claim (set once its last part came in), then its saved results, counters and size.
CHORD_SUFFIXES = (".c", ".j", ".t", ".s", ".d")
# How a success's meta starts as farpool-json writes it: status is its first key (_get_result_meta).
SUCCEEDED = '{"status": "SUCCESS"'
# Its scripts are tasks/lua/*.lua (tasks/lua/__init__.py): store, expect_twin, discard,
# drop_finished_chord, abandon_chord and forget_chord.


_quiet = threading.local()
_last_store = threading.local()  # the key of this thread's last store, if the script dropped it


@contextmanager
def without_result_subscriptions() -> Iterator[None]:
    """Within this block, results created by sends in this thread are not subscribed to."""
    _quiet.active = True
    try:
        yield
    finally:
        _quiet.active = False


class _FarpoolResults:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connparams["retry"] = no_retries()  # type: ignore[attr-defined]  # Celery retries a store

    def _run(self, name: str, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any:
        """tasks/lua/<name>.lua on this backend's client (tasks/lua/__init__.py)."""
        return script(name)(self.client, keys, args)  # type: ignore[attr-defined]

    def _set(self, key: Any, value: Any, expires: int | None = None) -> None:
        if expires is None:
            expires = self.expires  # type: ignore[attr-defined]
        text = key.decode() if isinstance(key, bytes) else key
        prefix = self.task_keyprefix  # type: ignore[attr-defined]
        task_id = text.removeprefix(prefix.decode() if isinstance(prefix, bytes) else prefix)
        blobs = pending_results.get(task_id, ()) if task_id != text else ()
        arguments = [value, int(expires or 0), SUCCEEDED, REPLAY_GRACE]
        for field, data in blobs:
            arguments += [field, data]
        twin = TWIN_PREFIX + text
        stored = self._run("store", [key, DISCARDED, twin, data_key(task_id)], arguments)
        _last_store.dropped = None if stored == 1 else key
        if stored == -1:  # the reply came back: this store will not be replayed, its guard can go
            with suppress(redis.RedisError):  # else it expires after REPLAY_GRACE
                self.client.delete(twin)  # type: ignore[attr-defined]

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        """Celery's, less the read before the write: the store script keeps a stored success."""
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)  # type: ignore[attr-defined]
        meta["task_id"] = bytes_to_str(task_id)
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)  # type: ignore[attr-defined]
        except BackendStoreError as error:
            raise BackendStoreError(str(error), state=state, task_id=task_id) from error
        return result

    def expect_twin(self, task_id: str) -> None:
        """This run of the task is a redelivery: keep only the first of its runs' results."""
        key = self.get_key_for_task(task_id)  # type: ignore[attr-defined]
        twin = TWIN_PREFIX + (key.decode() if isinstance(key, bytes) else key)
        visibility = int(self._transport_options.get("visibility_timeout", 3600))  # type: ignore[attr-defined]
        self._run("expect_twin", [key, twin], [visibility + STORE_RETRY_SECONDS])

    def _chord_keys(self, group_id: str) -> list[Any]:
        suffixes = ("", *CHORD_SUFFIXES)
        return [self.get_key_for_group(group_id, suffix) for suffix in suffixes]  # type: ignore[attr-defined]

    def drop_finished_chord(self, group_id: str) -> None:
        """Delete what a finished or abandoned chord left (its saved results, after a failure);
        a chord still running, or being gathered, is left alone."""
        self._run("drop_finished_chord", [DISCARDED, *self._chord_keys(group_id)])

    def abandon_chord(self, group_id: str, remember: float) -> None:
        """Its map was given up: delete the chord's keys, and again after any part that still ends."""
        self._run("abandon_chord", [DISCARDED, *self._chord_keys(group_id)], [time.time() + remember])

    def forget_chord(self, group_id: str) -> None:
        """An abandoned chord none of whose parts can still return: its mark and keys go now,
        and its gather task's mark (the group's id is that task's), never sent."""
        keys = [DISCARDED, self.get_key_for_task(group_id), *self._chord_keys(group_id)]  # type: ignore[attr-defined]
        self._run("forget_chord", keys)

    def discard(self, task_ids: Sequence[str], remember: float) -> list[str]:
        """Delete these tasks' results, and drop any stored later within `remember` seconds.

        Returns the tasks that had stored nothing yet: still queued or running.
        """
        keys = [self.get_key_for_task(task_id) for task_id in task_ids]  # type: ignore[attr-defined]
        now = time.time()
        pending: list[str] = []
        for start in range(0, len(keys), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            positions = self._run("discard", [DISCARDED, *batch], [now, now + remember])
            pending += [task_ids[start + int(position)] for position in positions]
        return pending

    def withdrawn(self, task_ids: Sequence[str]) -> None:
        """These discarded tasks' messages were taken out of the queue: they will never store."""
        keys = [self.get_key_for_task(task_id) for task_id in task_ids]  # type: ignore[attr-defined]
        for start in range(0, len(keys), KEY_BATCH):
            self.client.zrem(DISCARDED, *keys[start : start + KEY_BATCH])  # type: ignore[attr-defined]

    def on_chord_part_return(self, request: Any, state: Any, result: Any, **kwargs: Any) -> Any:
        """Celery's, then, for a map_async's chord that just failed or was abandoned (this part's
        store was dropped), its saved results go (Celery keeps them until they expire; nobody
        reads them). A part that succeeded in a live chord needs nothing more."""
        deadline = time.monotonic() + CHORD_PART_PATIENCE
        while True:
            # Celery's script counts a part once (by task id), so a retry after a lost reply
            # cannot count it twice; without one, the chunk was failed for the broker's restart.
            try:
                returned = super().on_chord_part_return(request, state, result, **kwargs)  # type: ignore[misc]
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(CHORD_PART_BACKOFF)
        if request.group and request.chord and request.chord.get("task") == GATHER:
            dropped = getattr(_last_store, "dropped", None) == self.get_key_for_task(request.id)  # type: ignore[attr-defined]
            if state != states.SUCCESS or dropped:
                self.drop_finished_chord(request.group)
        return returned

    def as_uri(self, include_password: bool = False) -> str:
        """The URL as written (the worker banner's `results:`), `***` for a password if any."""
        url = str(self.url or "")  # type: ignore[attr-defined]
        return url if include_password else mask_url(url)

    def on_task_call(self, producer: Any, task_id: str) -> None:
        if not getattr(_quiet, "active", False):
            super().on_task_call(producer, task_id)  # type: ignore[misc]

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        if getattr(_quiet, "active", False):
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)  # type: ignore[misc]

    def forget_subscriptions(self) -> None:
        """Its server has gone or its app closes: a result collected later unsubscribes from
        nothing (Celery's would reconnect for 20 s, then raise from `AsyncResult.__del__`)."""
        self.result_consumer.subscribed_to.clear()  # type: ignore[attr-defined]


class FarpoolRedisBackend(_FarpoolResults, RedisBackend):
    """redis:// and rediss:// results."""


class FarpoolSentinelBackend(_FarpoolResults, SentinelBackend):
    """sentinel:// results."""


def backend_setting(url: str) -> str:
    """Celery's `result_backend` value selecting farpool's class for this URL."""
    backend = FarpoolSentinelBackend if url.startswith("sentinel://") else FarpoolRedisBackend
    return f"{__name__}:{backend.__name__}+{url}"
