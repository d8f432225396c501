"""The one record of a pool's work: what is in flight, what arrived, what must be deleted.

Results arrive through one pub/sub listener per pool. Celery's Redis backend stores a result
with SET and PUBLISH on the same key: the ledger subscribes to the keys it expects, then reads
them once with MGET for any stored before the subscription, so there is no polling anywhere.
After a reconnect it reads every expected key again, since messages published while
disconnected are gone.

A result stays in Redis until someone collects it (`collect`), whichever process that is, or
until it expires; work given up on (`abandon`) is revoked and its results are dropped, now and
whenever a worker stores one later (tasks/backend.py). Until then it is *draining*: as with
multiprocessing, join() waits for a failed map's chunks that were still running.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from celery import Celery, states

from config import mask_url
from producer.cleanup import KEY_BATCH, Withdraw, delete_keys, drop_abandoned
from producer.errors import BrokerUnavailable, LostTasks
from producer.listener import ResultListener
from producer.lost import FindMissing, LostLook, looked_for, server_run_id
from producer.patience import patiently
from producer.publishing import all_sent_before
from producer.records import find_record
from producer.watch import BrokerWatch
from tasks.backend import DISCARDED
from tasks.blobs import data_keys
from tasks.contract import RECORD_PREFIX
from tasks.encoding import take_references
from tasks.payload import resolve

OnReady = Callable[[str, dict[str, Any]], None]
logger = logging.getLogger("farpool")
VERIFY_AFTER = 1.0


@dataclass(frozen=True)
class Expected:
    task_id: str
    on_ready: OnReady
    owned: bool  # sent by this pool: join() waits for it, terminate() revokes it
    queued: bool = True  # sent by a producer (a chord's gather is sent by a worker, at the end)
    since: float = field(default_factory=time.monotonic)


class Ledger:
    """Calls on_ready once per expected task, with its meta, as soon as the task is ready."""

    def __init__(
        self,
        app: Celery,
        give_up_after: float = 60.0,
        find_missing: FindMissing | None = None,
        withdraw: Withdraw | None = None,
        release: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.app = app
        self._release = release  # what else these tasks held (same-host arrays), once collected or abandoned
        self.backend: Any = cast(Any, app.backend)  # tasks/backend.py's, with discard()
        self.client: redis.Redis = self.backend.client
        expires = app.conf.result_expires or 86400
        self.remember = int(getattr(expires, "total_seconds", lambda: expires)())
        self.max_payload: int = app.settings.max_payload if hasattr(app, "settings") else 512 * 1024 * 1024
        self._expected: dict[bytes, Expected] = {}
        self._arriving: dict[bytes, Expected] = {}  # claimed by one thread, its callback running
        self._owned = 0  # owned entries in _expected and _arriving: join() waits for 0
        self._records: set[str] = set()  # calls recorded by this pool and not yet collected
        self._arrived: set[str] = set()  # tasks this pool sent that arrived and nobody collected here
        self._draining: set[bytes] = set()  # abandoned, still queued or running: join() waits for them
        self._chords: dict[str, set[bytes]] = {}  # abandoned map_async chords: their parts draining
        # subscribed as they were sent, not read back: looked for once, a second later, in case the
        # subscription reached the server after the result (another connection, another path)
        self._unverified: list[bytes] = []
        self._verifying: list[bytes] = []
        self._verify_at = 0.0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._watch = BrokerWatch(give_up_after)
        self._lost_look = LostLook(find_missing)
        self._withdraw = withdraw
        self._server = server_run_id(self.client)
        self._listener = ResultListener(
            self.client, self._watch, self._deliver, self._verify, self._resync, self._lost, self._awaiting
        )

    def key(self, task_id: str) -> bytes:
        key: bytes = self.backend.get_key_for_task(task_id)
        return key

    # -- what is in flight ---------------------------------------------------------------------

    def expect(
        self,
        task_ids: Sequence[str],
        on_ready: OnReady,
        *,
        owned: bool = True,
        record: tuple[str, dict[str, Any]] | None = None,
        unsent: bool = False,
        sent_later: Collection[str] = (),
    ) -> None:
        """Call on_ready(task_id, meta) once for each task as soon as it is ready.

        `record` (id, description) is stored alongside, in the same round trip, so that
        `recorded(id)` finds the call from any process until it is collected or expires.
        Tasks `unsent` yet cannot have stored anything: their results are not looked for.
        Tasks `sent_later` (by a worker) are not looked for in the queue while they are awaited.
        """
        keys = {self.key(task_id): task_id for task_id in task_ids}
        with self._lock:
            if record is not None and owned:
                self._records.add(record[0])
            for key, task_id in keys.items():
                if key not in self._expected and owned:
                    self._owned += 1
                self._expected[key] = Expected(task_id, on_ready, owned, task_id not in sent_later)
            if keys:
                self._listener.subscribe(*keys)
                self._lost_look.progressed()
            if unsent:
                self._unverified.extend(keys)
        if record is not None or not unsent:
            stored = functools.partial(self._read_stored, [] if unsent else list(keys), record)
            patiently(stored, self._watch.give_up_after)

    def uncollected(self) -> list[str]:
        """The tasks this pool sent whose results it has not collected: in flight, or arrived."""
        with self._lock:
            owned = [expected.task_id for expected in self._expected.values() if expected.owned]
            return [*owned, *self._arrived]

    def _busy(self) -> bool:
        return not self._closed and (self._owned > 0 or bool(self._draining))

    def wait_idle(self) -> None:
        """Block until every task this pool sent has arrived (callbacks run) or, if abandoned,
        has ended (ran, or was skipped as revoked)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._busy())

    def _forget(self, keys: Iterable[bytes]) -> list[Expected]:
        """Stop expecting these keys; the caller holds the lock and settles the owned count."""
        gone = [self._expected.pop(key) for key in keys if key in self._expected]
        if gone and not self._closed:
            self._listener.unsubscribe(*(self.key(expected.task_id) for expected in gone))
        return gone

    def _settled(self, count: int) -> None:
        """`count` owned tasks arrived (callbacks run) or were abandoned; the caller holds the lock."""
        self._owned -= count
        if not self._busy():
            self._idle.notify_all()

    # -- what must be deleted ------------------------------------------------------------------

    def collect(self, task_ids: Sequence[str], record_id: str | None = None) -> None:
        """These results were handed to their collector: delete them (and the call's record)."""
        keys: list[str | bytes] = [self.key(task_id) for task_id in task_ids]
        keys += data_keys(task_ids)
        with self._lock:
            self._arrived.difference_update(task_ids)
            if record_id is not None:
                keys.append(RECORD_PREFIX + record_id)
                self._records.discard(record_id)
        delete_keys(self.client, keys)
        if self._release is not None:
            self._release(task_ids)

    def abandon(self, task_ids: Sequence[str], terminate: bool = False) -> None:
        """Give up on these tasks: delete what they stored; revoke those still in flight, and drop
        whatever they store later. Nothing once the ledger is closed: its pool gave up on all."""
        if self._closed:
            return
        with self._lock:
            gone = self._forget(self.key(task_id) for task_id in task_ids)
            self._settled(sum(expected.owned for expected in gone))
            records = [task_id for task_id in task_ids if task_id in self._records]
            self._records.difference_update(records)
            arrived = {task_id for task_id in task_ids if task_id in self._arrived}
            self._arrived.difference_update(arrived)
        if not task_ids:
            return
        if self._release is not None:
            self._release(task_ids)
        try:
            if self._watch.given_up:
                raise redis.ConnectionError("the broker does not answer")
            self._drop_on_server(task_ids, records, arrived, terminate)
        except redis.RedisError as error:
            logger.warning(
                "could not tell the broker to drop %d abandoned tasks (%s): their results expire after %d s",
                len(task_ids),
                error,
                self.remember,
            )

    def _drop_on_server(
        self, task_ids: Sequence[str], records: list[str], arrived: set[str], terminate: bool
    ) -> None:
        in_flight = drop_abandoned(
            self.app, task_ids, records, arrived, self.remember, self._withdraw, terminate
        )
        if in_flight and terminate:
            return  # what was terminated may still store: the marks drop it, for a day
        # A map_async's chord sends its gather task (whose id is the map's, a record's) only once
        # its last chunk returned, which an abandoned chord never does: it is not waited for, and
        # its marks go once the chunks have ended (backend.forget_chord).
        keys = [self.key(task_id) for task_id in in_flight if task_id not in records]
        with self._lock:
            self._chords.update((record_id, set(keys)) for record_id in records)
        if keys:
            self._drain(keys)
        else:
            self._chords_ended([])

    def _drain(self, keys: list[bytes]) -> None:
        """Wait for these abandoned tasks to end: a worker drops what they store and says so."""
        with self._lock:
            if self._closed:
                return
            self._draining.update(keys)
            self._listener.subscribe(*keys)
        self._check_drained(keys)

    def _check_drained(self, keys: list[bytes]) -> None:
        """A task has ended once its discard mark is gone (the worker's store removed it)."""
        if not keys:
            return
        scores = self.client.zmscore(DISCARDED, keys)  # type: ignore[arg-type]
        self._drained([key for key, score in zip(keys, scores, strict=True) if score is None])

    def _drained(self, keys: list[bytes]) -> None:
        with self._lock:
            ended = self._draining.intersection(keys)
            if not ended:
                return
            self._draining.difference_update(ended)
            if not self._closed:
                self._listener.unsubscribe(*ended)
            if not self._busy():
                self._idle.notify_all()
        self._chords_ended(list(ended))

    def _chords_ended(self, keys: list[bytes]) -> None:
        """These abandoned tasks ended: an abandoned chord none of whose parts can still return
        has its mark and keys deleted (they were kept to drop what a late part left)."""
        with self._lock:
            for parts in self._chords.values():
                parts.difference_update(keys)
            ended = [record_id for record_id, parts in self._chords.items() if not parts]
            for record_id in ended:
                del self._chords[record_id]
        for record_id in ended:
            with contextlib.suppress(redis.RedisError):  # else its marks expire with the set
                self.backend.forget_chord(record_id)

    # -- records of calls, for result(id) from any process ---------------------------------------

    def recorded(self, call_id: str) -> dict[str, Any] | None:
        """The record of call `call_id`; {} when only its result is stored; None when unknown."""
        return find_record(self.backend, call_id)

    # -- arrivals ------------------------------------------------------------------------------

    def _read_stored(self, keys: list[bytes], record: tuple[str, dict[str, Any]] | None = None) -> None:
        for start in range(0, max(len(keys), 1 if record else 0), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            with self.client.pipeline(transaction=False) as pipe:
                if record is not None:
                    call_id, description = record
                    pipe.set(RECORD_PREFIX + call_id, json.dumps(description), ex=self.remember)
                    record = None
                if batch:
                    pipe.mget(batch)
                replies = pipe.execute()
            payloads = replies[-1] if batch else []
            for key, payload in zip(batch, payloads, strict=True):
                if payload is not None:
                    self._deliver(key, payload)

    def _deliver(self, key: bytes, payload: bytes) -> None:
        if key in self._draining:
            self._drained([key])
            return
        if not payload:  # a dropped result's notice, for a task no longer watched
            return
        try:
            meta = self.backend.decode_result(payload)
            if take_references():
                meta["result"] = resolve(meta["result"], self.client, self.max_payload, handles=False)
        except Exception as error:
            meta = {"status": states.FAILURE, "result": error, "traceback": None}
        if meta["status"] not in states.READY_STATES:
            return
        self._lost_look.progressed()
        with self._lock:
            claimed = self._forget([key])
            if not claimed:  # not expected, or another thread delivers it
                return
            expected = self._arriving[key] = claimed[0]
            if expected.owned:
                self._arrived.add(expected.task_id)
        try:
            expected.on_ready(expected.task_id, meta)
        except Exception:  # a user's callback raised: log it, keep listening for the others
            logger.exception("a result callback for task %s raised", expected.task_id)
        finally:
            with self._lock:
                del self._arriving[key]
                self._settled(1 if expected.owned else 0)

    def _awaiting(self) -> bool:
        with self._lock:
            return bool(self._expected or self._draining)

    def _resync(self) -> None:
        """The listener reconnected: read back what was published meanwhile, and check that the
        server is the same one."""
        with self._lock:
            keys, draining = list(self._expected), list(self._draining)
        self._read_stored(keys)
        self._check_drained(draining)
        self._check_server()

    def _verify(self) -> None:
        """Look once for the results of tasks subscribed to at least VERIFY_AFTER s ago."""
        now = time.monotonic()
        if now < self._verify_at:
            return
        self._verify_at = now + VERIFY_AFTER
        with self._lock:
            keys = [key for key in self._verifying if key in self._expected]
            self._verifying, self._unverified = self._unverified, []
        if keys:
            self._read_stored(keys)
        self._fail_lost(self._lost_look.stalled(self._queued), LostTasks.nowhere)

    def _queued(self) -> list[str]:
        sent_before = all_sent_before(self.app)
        with self._lock:
            return looked_for(self._expected.values(), sent_before)

    def _lost(self, error: Exception) -> None:
        silent = self._watch.failed()
        if silent >= self._watch.give_up_after:
            self._give_up(silent, error)

    def _give_up(self, silent: float, error: Exception) -> None:
        """Fail every call waiting on a server that has not answered for too long."""
        with self._lock:
            gone = list(self._expected.values())
        server, limit = mask_url(str(self.backend.url)), self._watch.give_up_after
        self._fail(gone, BrokerUnavailable.silent_for(server, silent, limit, error, self.remember))
        with self._lock:
            self._draining.clear()

    def _check_server(self) -> None:
        """After a reconnect to another server, fail the tasks it no longer has (producer/lost.py)."""
        server = server_run_id(self.client)
        if server != self._server:
            self._server = server
            self._fail_lost(self._lost_look.missing(self._queued()), LostTasks.after_change)

    def _fail_lost(self, missing: list[str], error: Callable[[str, int], LostTasks]) -> None:
        lost = {self.key(task_id) for task_id in missing}
        with self._lock:
            gone = [expected for key, expected in self._expected.items() if key in lost]
        if gone:
            self._fail(gone, error(mask_url(str(self.backend.url)), len(missing)))

    def _fail(self, gone: list[Expected], error: BaseException) -> None:
        """Stop expecting these tasks and hand each caller waiting on them `error`."""
        with self._lock:
            ended = self._forget(self.key(expected.task_id) for expected in gone)
            self._settled(sum(expected.owned for expected in ended))
        meta = {"status": states.FAILURE, "result": error, "traceback": None}
        callbacks = {expected.on_ready: expected.task_id for expected in ended}
        for on_ready, task_id in callbacks.items():
            try:
                on_ready(task_id, meta)
            except Exception:
                logger.exception("a result callback for task %s raised", task_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._idle.notify_all()
        self._listener.close()
