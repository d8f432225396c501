"""AsyncResult and MapResult: the stdlib's result API over Celery task results.

A result is read into memory when it arrives, but stays in Redis until it is collected:
by get() (and so `await`), or by the callback or error_callback that received it. Whoever
collects it first, in whatever process, deletes it; until then any process can collect it with
producer.result(id).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from multiprocessing.pool import RemoteTraceback  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

import redis
from celery import states
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from kombu.exceptions import EncodeError

from producer.errors import TimeoutError, UnknownResult
from producer.inflight.ledger import Ledger
from producer.sending.references import module_folder
from tasks.contract import UnsendableResult
from tasks.errors import RefusedTask
from tasks.wire import CallRecord

Callback = Callable[[Any], object]
V = TypeVar("V")  # what get() returns
R = TypeVar("R")  # what the function returns
logger = logging.getLogger("farpool")


@dataclass(frozen=True)
class Sent:
    """What one call put on the queue, and how to read it back.

    `id` is the result's id: the task's for an apply, the map's for a map (for map_async, also
    the id of its chord's gather task, whose value is the whole list). `recorded` calls can be
    found by id from any process.
    """

    id: str
    task_name: str | None = None
    chunk_ids: tuple[str, ...] = ()
    lengths: tuple[int, ...] = ()
    gathered: bool = False
    recorded: bool = False

    def description(self) -> CallRecord:
        return CallRecord(task=self.task_name, chunks=list(self.chunk_ids) if self.gathered else None)


@dataclass(frozen=True)
class Callbacks:
    """The stdlib's callback and error_callback, and a progress count (items per chunk)."""

    callback: Callback | None = None
    error_callback: Callback | None = None
    on_progress: Callable[[int], object] | None = None


def remote_error(meta: dict[str, Any], task_name: str | None = None) -> BaseException:
    """The task's own exception, its remote traceback attached as the cause (as multiprocessing).

    A time limit reached on the worker becomes producer.TimeoutError naming the task.
    """
    stored: object = meta["result"]
    what = f"task {task_name!r}" if task_name else "the task"
    if type(stored) is builtins.TimeoutError:
        error: BaseException = TimeoutError(*stored.args)
    elif isinstance(stored, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        error = TimeoutError(f"{what} exceeded its time limit ({type(stored).__name__}: {stored})")
    elif isinstance(stored, EncodeError):
        error = UnsendableResult(f"{what} returned a value JSON cannot carry: {stored}")
    elif isinstance(stored, RefusedTask) and stored.module and module_folder(stored.module):
        error = stored.with_folder(str(module_folder(stored.module)))  # the folder it came from here
    elif isinstance(stored, BaseException):
        error = stored
    else:
        error = RuntimeError(f"task ended in state {meta['status']}: {stored!r}")
    traceback = meta.get("traceback")
    if traceback:
        error.__cause__ = RemoteTraceback(traceback)
    return error


class _Result(Generic[V]):
    """What AsyncResult and MapResult share: readiness, get/wait, callbacks, collection, `await`."""

    def __init__(self, ledger: Ledger, sent: Sent, callbacks: Callbacks) -> None:
        self._ledger = ledger
        self._sent = sent
        self._callbacks = callbacks
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._settling = False
        self._collected = False
        self._done_callbacks: list[Callable[[], None]] = []
        self._value: V = None  # type: ignore[assignment]  # set before anyone reads it
        self._error: BaseException | None = None

    @property
    def id(self) -> str:
        return self._sent.id

    @property
    def task_ids(self) -> list[str]:
        """Every task whose result this one is made of."""
        return [*self._sent.chunk_ids, *([self._sent.id] if self._sent.gathered else [])]

    def ready(self) -> bool:
        return self._event.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        self._event.wait(timeout)

    def get(self, timeout: float | None = None) -> V:
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError(f"result {self.id} not ready after {timeout} s")
        self._collect()
        if self._error is not None:
            raise self._error
        return self._value

    def _collect(self) -> None:
        """Delete the result from Redis: it has reached its collector (once)."""
        with self._lock:
            if self._collected:
                return
            self._collected = True
        try:
            self._ledger.collect(self.task_ids, self.id if self._sent.recorded else None)
        except redis.RedisError:  # the value is here already; the keys expire by themselves
            logger.warning("could not delete the results of %s", self.id, exc_info=True)

    def _settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Once: the value (or error), then the callback that receives it, then wake the waiters.

        Waiters wake last, as in multiprocessing, so that whoever returns from get() finds
        the callbacks done.
        """
        with self._lock:
            if self._settling:
                return
            self._settling = True
            self._value, self._error = value, error
        callback = self._callbacks.callback if error is None else self._callbacks.error_callback
        try:
            if callback is not None:
                self._collect()
                callback(value if error is None else error)
        finally:  # whatever happened above, the waiters wake
            with self._lock:
                self._event.set()
                done_callbacks, self._done_callbacks = self._done_callbacks, []
            for done in done_callbacks:
                done()

    def _on_done(self, done: Callable[[], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._done_callbacks.append(done)
                return
        done()

    def __await__(self) -> Generator[Any, None, V]:
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not settled.done():
                settled.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(settle)

        self._on_done(wake)
        yield from settled.__await__()
        return self.get(0)

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<{type(self).__name__} {self.id} {state}>"


class AsyncResult(_Result[R]):
    """The result of one task (apply_async)."""

    def __init__(self, ledger: Ledger, sent: Sent, callbacks: Callbacks = Callbacks(), owned: bool = True):
        """`owned`: made by the pool that is about to send the call; otherwise attached to it."""
        super().__init__(ledger, sent, callbacks)
        record = (sent.id, sent.description()) if sent.recorded and owned else None
        ledger.expect([sent.id], self, owned=owned, record=record, unsent=owned)

    @property
    def task_ids(self) -> list[str]:
        return [self.id]

    def _set(self, task_id: str, meta: dict[str, Any]) -> None:
        if meta["status"] == states.SUCCESS:
            self._settle(meta["result"])
        else:
            self._settle(error=remote_error(meta, self._sent.task_name))


class MapResult(_Result[list[R]]):
    """The result of a map: chunk results in order, or the first failure (the rest abandoned).

    A map (a group) assembles the chunks' values here; a map_async (a chord) takes the value
    its gather task stored, and watches the chunks for failures and progress.
    """

    def __init__(self, ledger: Ledger, sent: Sent, callbacks: Callbacks = Callbacks(), owned: bool = True):
        super().__init__(ledger, sent, callbacks)
        self._index = {task_id: index for index, task_id in enumerate(sent.chunk_ids)}
        self._chunks: list[Any] = [None] * len(sent.chunk_ids)
        self._pending = set(self.task_ids)
        self._count_lock = threading.Lock()
        if not self._pending:
            self._settle([])
            return
        record = (sent.id, sent.description()) if sent.recorded and owned else None
        gather = [sent.id] if sent.gathered else []  # sent by the worker that ends the last chunk
        ledger.expect(self.task_ids, self, owned=owned, record=record, unsent=owned, sent_later=gather)

    def _set(self, task_id: str, meta: dict[str, Any]) -> None:
        with self._count_lock:
            self._pending.discard(task_id)
            chunks_left = len(self._pending) - (1 if self._sent.gathered and self.id in self._pending else 0)
        if meta["status"] != states.SUCCESS:
            self._fail(remote_error(meta, self._sent.task_name))
        elif task_id == self.id and self._sent.gathered:
            self._settle(meta["result"])
        else:
            index = self._index[task_id]
            if not self._sent.gathered:
                self._chunks[index] = meta["result"]
            if self._callbacks.on_progress is not None and self._sent.lengths:
                self._callbacks.on_progress(self._sent.lengths[index])
            if chunks_left == 0 and not self._sent.gathered:
                self._settle([value for chunk in self._chunks for value in chunk])

    def _fail(self, error: BaseException) -> None:
        with self._count_lock:
            pending = list(self._pending)
            self._pending.clear()
        if not self.ready() and pending:
            self._ledger.abandon(pending)
        self._settle(error=error)


def attach_result(ledger: Ledger, result_id: str) -> MapResult[Any] | AsyncResult[Any]:
    """The result of a map_async or apply_async sent by any producer, found by its id.

    UnknownResult if none is known: never sent, already collected, or expired.
    """
    record = ledger.recorded(result_id)
    if record is None:
        raise UnknownResult(result_id, ledger.remember)
    task = record.get("task")
    chunks = record.get("chunks")
    if chunks is None:
        return AsyncResult(ledger, Sent(result_id, task, recorded=bool(record)), owned=False)
    return MapResult(ledger, Sent(result_id, task, tuple(chunks), gathered=True, recorded=True), owned=False)
