"""A pool's results: its table of work in flight, fed by one pub/sub listener, and its clean-up.

Results arrive through one pub/sub listener per pool. Celery's Redis backend stores a result
with SET and PUBLISH on the same key: the ledger subscribes to the keys it expects, then reads
them once with MGET for any stored before the subscription, so there is no polling anywhere.
After a reconnect it reads every expected key again, since messages published while
disconnected are gone.

A result stays in Redis until someone collects it (`collect`), whichever process that is, or
until it expires; work given up on (`abandon`) is revoked and its results are dropped, now and
whenever a worker stores one later (tasks/backend.py). Until then it is *draining*: as with
multiprocessing, join() waits for a failed map's chunks that were still running.

The parts: table.py keeps the books (what is expected, by whom, what drains), listener.py turns
the connection's messages into (result key, payload), cleanup.py deletes, abandons, withdraws
and drains; this module joins them, decodes what arrives, and fails what can no longer arrive
(a silent server, one that lost the tasks in a failover).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis
from celery import Celery, states

from config import Settings, mask_url
from producer.errors import BrokerUnavailable, LostTasks
from producer.inflight.cleanup import Cleanup, Withdraw
from producer.inflight.listener import ResultListener
from producer.inflight.liveness import BrokerWatch
from producer.inflight.lost import FindMissing, LostLook, looked_for, missing_tasks, server_run_id
from producer.inflight.patience import patiently
from producer.inflight.records import find_record
from producer.inflight.table import Expected, InFlight, Receiver
from producer.inflight.withdraw import withdraw_queued
from producer.sending.publishing import all_sent_before
from tasks.encoding import take_references
from tasks.payload import resolve
from tasks.wire import KEY_BATCH, CallRecord, dump_record, record_key

logger = logging.getLogger("farpool")
VERIFY_AFTER = 1.0


class Ledger:
    """Hands each expected task's outcome to its receiver's `_set(task_id, meta)`, once, as soon as
    the task is ready; deletes what was collected and drops what was abandoned."""

    def __init__(
        self,
        app: Celery,
        give_up_after: float = 60.0,
        find_missing: FindMissing | None = None,
        withdraw: Withdraw | None = None,
        release: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.app = app
        self.backend: Any = cast(Any, app.backend)  # tasks/backend.py's, with discard()
        self.client: redis.Redis = self.backend.client
        expires = app.conf.result_expires or 86400
        self.remember = int(getattr(expires, "total_seconds", lambda: expires)())
        self.max_payload: int = app.settings.max_payload if hasattr(app, "settings") else 512 * 1024 * 1024
        self._table = InFlight(self._subscribe, self._unsubscribe)
        self._verify_at = 0.0
        self._watch = BrokerWatch(give_up_after)
        self._cleanup = Cleanup(
            app, self._table, self.remember, lambda: self._watch.given_up, withdraw, release
        )
        self._lost_look = LostLook(find_missing)
        self._server = server_run_id(self.client)
        self._listener = ResultListener(
            self.client,
            self._watch,
            self._deliver,
            self._verify,
            self._resync,
            self._lost,
            self._table.awaiting,
        )

    def key(self, task_id: str) -> bytes:
        key: bytes = self.backend.get_key_for_task(task_id)
        return key

    def _subscribe(self, *keys: bytes) -> None:
        self._listener.subscribe(*keys)

    def _unsubscribe(self, *keys: bytes) -> None:
        self._listener.unsubscribe(*keys)

    # -- what is in flight ---------------------------------------------------------------------

    def expect(
        self,
        task_ids: Sequence[str],
        receiver: Receiver,
        *,
        owned: bool = True,
        record: tuple[str, CallRecord] | None = None,
        unsent: bool = False,
        sent_later: Sequence[str] = (),
    ) -> None:
        """Call receiver._set(task_id, meta) once for each task as soon as it is ready.

        `record` (id, description) is stored alongside, in the same round trip, so that
        `recorded(id)` finds the call from any process until it is collected or expires.
        Tasks `unsent` yet cannot have stored anything: their results are not looked for.
        Tasks `sent_later` (by a worker) are not looked for in the queue while they are awaited.
        """
        keys = {self.key(task_id): task_id for task_id in task_ids}
        record_id = record[0] if record is not None else None
        self._table.expect(keys, receiver, owned, record_id, unsent, set(sent_later))
        self._lost_look.progressed()
        if record is not None or not unsent:
            stored = functools.partial(self._read_stored, [] if unsent else list(keys), record)
            patiently(stored, self._watch.give_up_after)

    def uncollected(self) -> list[str]:
        """The tasks this pool sent whose results it has not collected: in flight, or arrived."""
        return self._table.uncollected()

    def wait_idle(self) -> None:
        """Block until every task this pool sent has arrived (receivers run) or, if abandoned,
        has ended (ran, or was skipped as revoked)."""
        self._table.wait_idle()

    # -- what must be deleted (cleanup.py) ------------------------------------------------------

    def collect(self, task_ids: Sequence[str], record_id: str | None = None) -> None:
        """These results were handed to their collector: delete them (and the call's record)."""
        self._cleanup.collect(task_ids, record_id)

    def abandon(self, task_ids: Sequence[str], terminate: bool = False) -> None:
        """Give up on these tasks: delete what they stored; revoke those still in flight, and drop
        whatever they store later. Nothing once the ledger is closed: its pool gave up on all."""
        self._cleanup.abandon(task_ids, terminate)

    # -- records of calls, for result(id) from any process ---------------------------------------

    def recorded(self, call_id: str) -> CallRecord | dict[str, Any] | None:
        """The record of call `call_id`; {} when only its result is stored; None when unknown."""
        return find_record(self.backend, call_id)

    # -- arrivals ------------------------------------------------------------------------------

    def _read_stored(self, keys: list[bytes], record: tuple[str, CallRecord] | None = None) -> None:
        for start in range(0, max(len(keys), 1 if record else 0), KEY_BATCH):
            batch = keys[start : start + KEY_BATCH]
            with self.client.pipeline(transaction=False) as pipe:
                if record is not None:
                    call_id, description = record
                    pipe.set(record_key(call_id), dump_record(description), ex=self.remember)
                    record = None
                if batch:
                    pipe.mget(batch)
                replies = pipe.execute()
            payloads = replies[-1] if batch else []
            for key, payload in zip(batch, payloads, strict=True):
                if payload is not None:
                    self._deliver(key, payload)

    def _deliver(self, key: bytes, payload: bytes) -> None:
        if self._table.is_draining(key):
            self._cleanup.drained([key])
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
        expected = self._table.claim(key)
        if expected is None:  # not expected, or another thread delivers it
            return
        try:
            expected.receiver._set(expected.task_id, meta)
        except Exception:  # a user's callback raised: log it, keep listening for the others
            logger.exception("a result callback for task %s raised", expected.task_id)
        finally:
            self._table.done(key, expected)

    def _resync(self) -> None:
        """The listener reconnected: read back what was published meanwhile, and check that the
        server is the same one."""
        keys, draining = self._table.keys()
        self._read_stored(keys)
        self._cleanup.check_drained(draining)
        self._check_server()

    def _verify(self) -> None:
        """Look once for the results of tasks subscribed to at least VERIFY_AFTER s ago."""
        now = time.monotonic()
        if now < self._verify_at:
            return
        self._verify_at = now + VERIFY_AFTER
        keys = self._table.take_unverified()
        if keys:
            self._read_stored(keys)
        self._fail_lost(self._lost_look.stalled(self._queued), LostTasks.nowhere)

    def _queued(self) -> list[str]:
        return looked_for(self._table.waiting(), all_sent_before(self.app))

    def _lost(self, error: Exception) -> None:
        silent = self._watch.failed()
        if silent >= self._watch.give_up_after:
            self._give_up(silent, error)

    def _give_up(self, silent: float, error: Exception) -> None:
        """Fail every call waiting on a server that has not answered for too long."""
        gone = self._table.waiting()
        server, limit = mask_url(str(self.backend.url)), self._watch.give_up_after
        self._fail(gone, BrokerUnavailable.silent_for(server, silent, limit, error, self.remember))
        self._table.stop_draining()

    def _check_server(self) -> None:
        """After a reconnect to another server, fail the tasks it no longer has (inflight/lost.py)."""
        server = server_run_id(self.client)
        if server != self._server:
            self._server = server
            self._fail_lost(self._lost_look.missing(self._queued()), LostTasks.after_change)

    def _fail_lost(self, missing: list[str], error: Callable[[str, int], LostTasks]) -> None:
        gone = self._table.waiting({self.key(task_id) for task_id in missing})
        if gone:
            self._fail(gone, error(mask_url(str(self.backend.url)), len(missing)))

    def _fail(self, gone: list[Expected], error: BaseException) -> None:
        """Stop expecting these tasks and hand each caller waiting on them `error`."""
        ended = self._table.fail([self.key(expected.task_id) for expected in gone])
        meta = {"status": states.FAILURE, "result": error, "traceback": None}
        receivers = {expected.receiver: expected.task_id for expected in ended}
        for receiver, task_id in receivers.items():
            try:
                receiver._set(task_id, meta)
            except Exception:
                logger.exception("a result callback for task %s raised", task_id)

    def close(self) -> None:
        self._table.close()
        self._listener.close()


def pool_ledger(app: Celery, settings: Settings, release: Callable[[Sequence[str]], None]) -> Ledger:
    """A pool's ledger: it looks for lost tasks, and withdraws abandoned ones, on the pool's queue."""
    queue = settings.queue
    return Ledger(
        app,
        give_up_after=settings.broker_timeout,
        find_missing=functools.partial(missing_tasks, app, queue),
        withdraw=functools.partial(withdraw_queued, app, queue),
        release=release,
    )
