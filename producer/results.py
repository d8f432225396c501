"""AsyncResult and MapResult: the stdlib's result API over Celery task results."""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from multiprocessing.pool import RemoteTraceback  # type: ignore[attr-defined]
from typing import Any

from celery import states
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from kombu.exceptions import EncodeError

from producer.errors import TimeoutError
from producer.hub import ResultHub

Callback = Callable[[Any], object]
logger = logging.getLogger("farpool")


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
        error = TypeError(f"{what} returned a value JSON cannot carry: {stored}")
    elif isinstance(stored, BaseException):
        error = stored
    else:
        error = RuntimeError(f"task ended in state {meta['status']}: {stored!r}")
    traceback = meta.get("traceback")
    if traceback:
        error.__cause__ = RemoteTraceback(traceback)
    return error


class _Result:
    """What AsyncResult and MapResult share: readiness, get/wait, callbacks, `await`."""

    def __init__(
        self,
        result_id: str,
        callback: Callback | None = None,
        error_callback: Callback | None = None,
    ) -> None:
        self._id = result_id
        self._callback = callback
        self._error_callback = error_callback
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._settling = False
        self._done_callbacks: list[Callable[[], None]] = []
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def id(self) -> str:
        return self._id

    def ready(self) -> bool:
        return self._event.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        self._event.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError(f"result {self._id} not ready after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value

    def _finish(
        self,
        value: Any = None,
        error: BaseException | None = None,
        cleanup: Callable[[], None] | None = None,
    ) -> bool:
        """Settle once (False if already settled): cleanup, callbacks, then wake the waiters.

        Waiters wake last, as in multiprocessing, so that whoever returns from get() finds
        the keys deleted and the pool's bookkeeping done.
        """
        with self._lock:
            if self._settling:
                return False
            self._settling = True
        try:
            if cleanup is not None:
                try:
                    cleanup()
                except Exception:  # best effort: the keys expire by themselves (result_expires)
                    logger.warning("could not delete the results of %s", self._id, exc_info=True)
            if error is None and self._callback is not None:
                self._callback(value)
            if error is not None and self._error_callback is not None:
                self._error_callback(error)
        finally:  # whatever happened above, the waiters wake
            with self._lock:
                self._value, self._error = value, error
                self._event.set()
                done_callbacks, self._done_callbacks = self._done_callbacks, []
        for done in done_callbacks:
            done()
        return True

    def _on_done(self, done: Callable[[], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._done_callbacks.append(done)
                return
        done()

    def __await__(self) -> Generator[Any, None, Any]:
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
        return f"<{type(self).__name__} {self._id} {state}>"


class AsyncResult(_Result):
    """The result of one task (apply_async); its key is deleted once it has arrived."""

    def __init__(
        self,
        hub: ResultHub,
        task_id: str,
        callback: Callback | None = None,
        error_callback: Callback | None = None,
        on_settled: Callable[[list[str]], None] | None = None,
        task_name: str | None = None,
    ) -> None:
        super().__init__(task_id, callback, error_callback)
        self._hub = hub
        self._on_settled = on_settled
        self._task_name = task_name
        hub.watch([task_id], self._arrived)

    def _arrived(self, task_id: str, meta: dict[str, Any]) -> None:
        def cleanup() -> None:
            self._hub.delete([task_id])
            if self._on_settled is not None:
                self._on_settled([task_id])

        if meta["status"] == states.SUCCESS:
            self._finish(meta["result"], cleanup=cleanup)
        else:
            self._finish(error=remote_error(meta, self._task_name), cleanup=cleanup)


class MapResult(_Result):
    """The result of a map: chunk results in order, or the first failure (the rest revoked).

    With `gather_id` (map_async's chord), the value is the gather task's list and the
    chunks are watched only for failures and progress.
    """

    def __init__(
        self,
        hub: ResultHub,
        map_id: str,
        chunk_ids: Sequence[str],
        chunk_lengths: Sequence[int],
        *,
        gather_id: str | None = None,
        saved_map: bool = False,
        callback: Callback | None = None,
        error_callback: Callback | None = None,
        on_progress: Callable[[int], object] | None = None,
        revoke: Callable[[list[str]], None] | None = None,
        on_settled: Callable[[list[str]], None] | None = None,
        task_name: str | None = None,
    ) -> None:
        super().__init__(map_id, callback, error_callback)
        self._task_name = task_name
        self._hub = hub
        self._chunk_ids = list(chunk_ids)
        self._index = {task_id: index for index, task_id in enumerate(self._chunk_ids)}
        self._lengths = list(chunk_lengths)
        self._chunks: list[Any] = [None] * len(self._chunk_ids)
        self._pending = set(self._chunk_ids)
        self._gather_id = gather_id
        self._saved_map = saved_map
        self._on_progress = on_progress
        self._revoke = revoke
        self._on_settled = on_settled
        self._count_lock = threading.Lock()
        if not self._chunk_ids and gather_id is None:
            self._finish([])
            return
        if gather_id is not None:
            hub.watch([gather_id], self._gathered)
        hub.watch(self._chunk_ids, self._chunk_arrived)

    @property
    def task_ids(self) -> list[str]:
        return [*self._chunk_ids, *([self._gather_id] if self._gather_id else [])]

    def _chunk_arrived(self, task_id: str, meta: dict[str, Any]) -> None:
        with self._count_lock:
            self._pending.discard(task_id)
            remaining = len(self._pending)
        if meta["status"] != states.SUCCESS:
            self._fail(remote_error(meta, self._task_name))
            return
        index = self._index[task_id]
        if self._gather_id is None:
            self._chunks[index] = meta["result"]
        if self._on_progress is not None:
            self._on_progress(self._lengths[index])
        if remaining == 0 and self._gather_id is None:
            self._settle([value for chunk in self._chunks for value in chunk])

    def _gathered(self, task_id: str, meta: dict[str, Any]) -> None:
        if meta["status"] == states.SUCCESS:
            self._settle(meta["result"])
        else:
            self._fail(remote_error(meta, self._task_name))

    def _fail(self, error: BaseException) -> None:
        with self._count_lock:
            pending = list(self._pending)
            self._pending.clear()
        if not self.ready() and pending and self._revoke is not None:
            self._revoke(pending)
        self._settle(error=error, leftovers=pending)

    def _settle(
        self, value: Any = None, error: BaseException | None = None, leftovers: Sequence[str] = ()
    ) -> None:
        def cleanup() -> None:
            ids = self.task_ids
            self._hub.discard(ids, pending=leftovers)
            if self._saved_map:
                self._hub.forget_map(self.id)
            if self._on_settled is not None:
                self._on_settled(ids)

        self._finish(value, error, cleanup)
