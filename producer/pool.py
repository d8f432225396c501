"""Pool: multiprocessing.Pool's API, typed, with the work running on Celery workers.

`func` is a plain function defined at the top level of a module or of the script, a Celery
task, or a task's name (producer/sending/callables.py); mypy infers what each call returns from a typed
function or task, and `Any` from a name.
"""

from __future__ import annotations

import atexit
import logging
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self, TypeVar, cast, overload

from celery.canvas import Signature

import tasks
from producer.imap import IMapIterator
from producer.inflight.ledger import pool_ledger
from producer.lifecycle import (
    CLOSE,
    RUN,
    TERMINATE,
    Life,
    refuse,
    refuse_inside_worker,
    stop_at_exit,
    terminate_quietly,
)
from producer.local.cluster import LocalCluster, WorkerInfo, announced_workers
from producer.local.start import serve_this_pool
from producer.results import AsyncResult, Callback, MapResult, attach_result
from producer.sending.arrays import PoolArrays
from producer.sending.calls import Calls
from producer.sending.handles import PutHandle
from producer.sending.references import MainScript, main_script

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger("farpool")


class Pool:
    """A pool whose processes are the prefork processes of the Celery workers on the broker.

    `processes` plays the stdlib's part in the default chunksize and the imap window; the
    cluster's own size is set where the workers run (FARPOOL_CONCURRENCY on each host).
    `initializer` and `maxtasksperchild` belong to the workers and are refused here.
    With no worker online and a loopback broker, the pool starts a local worker for its
    lifetime unless `start_local` is False (then NoWorkersError says how to start one).
    `script` names the module (and folder) whose functions this machine's local workers are
    asked to call: the running script's by default (producer/local/script_access.py).
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Sequence[Any] = (),
        maxtasksperchild: int | None = None,
        context: object = None,
        *,
        app: tasks.FarpoolCelery | None = None,
        start_local: bool = True,
        script: MainScript | None = None,
    ) -> None:
        refuse(processes, initializer, maxtasksperchild)
        self._app: tasks.FarpoolCelery = app or tasks.app
        refuse_inside_worker()
        self._settings = self._app.settings
        self._life = Life()
        self._local = LocalCluster(self._settings, self._app, script=script or main_script())
        self._local.start_broker(persistent=False)
        try:
            workers = [] if self._local.started_broker else announced_workers(self._app, self._settings.queue)
            serve_this_pool(self._local, self._settings, workers, start_local)
            logger.debug("workers online on queue %r: %s", self._settings.queue, [w.name for w in workers])
            cluster_processes = sum(worker.processes for worker in workers)
            self._cluster_processes = cluster_processes or self._settings.concurrency
            self._processes = processes or self._cluster_processes
            # The ledger's thread outlives a dropped pool: what it holds must not hold the pool.
            self._arrays = PoolArrays(self._app, self._settings, cast(Any, self._app.backend).client)
            self._ledger = pool_ledger(self._app, self._settings, self._arrays.release)
            self._calls = Calls(
                self._app, self._arrays, self._ledger, self._processes, self._life.check_running
            )
        except BaseException:
            self._local.stop()
            raise
        atexit.register(stop_at_exit, weakref.ref(self))
        self._state = RUN

    @property
    def _state(self) -> str:
        return self._life.state

    @_state.setter
    def _state(self, state: str) -> None:
        self._life.state = state

    def _check_running(self) -> None:
        self._life.check_running()

    @overload
    def map(
        self,
        func: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[R]: ...
    @overload
    def map(
        self,
        func: str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[Any]: ...
    def map(
        self,
        func: Callable[[Any], Any] | str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """[func(x) for x in iterable], computed on the cluster in chunks; blocks.

        `timeout`: seconds each item may run (a chunk of n items gets n × timeout, enforced by
        Celery's soft limit, then its hard limit); past it, producer.TimeoutError.
        """
        return self._calls.map_now(func, iterable, chunksize, False, progress, timeout)

    @overload
    def starmap(
        self,
        func: Callable[..., R],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[R]: ...
    @overload
    def starmap(
        self,
        func: str,
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[Any]: ...
    def starmap(
        self,
        func: Callable[..., Any] | str,
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """[func(*args) for args in iterable], as map."""
        return self._calls.map_now(func, iterable, chunksize, True, progress, timeout)

    @overload
    def map_async(
        self,
        func: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        callback: Callback | Signature | None = None,
        error_callback: Callback | None = None,
        *,
        timeout: float | None = None,
    ) -> MapResult[R]: ...
    @overload
    def map_async(
        self,
        func: str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callback | Signature | None = None,
        error_callback: Callback | None = None,
        *,
        timeout: float | None = None,
    ) -> MapResult[Any]: ...
    def map_async(
        self,
        func: Callable[[Any], Any] | str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callback | Signature | None = None,
        error_callback: Callback | None = None,
        *,
        timeout: float | None = None,
    ) -> MapResult[Any]:
        """A chord of chunks and a gather task; the MapResult's id re-attaches with result(id)."""
        return self._calls.map_async(func, iterable, chunksize, False, callback, error_callback, timeout)

    def starmap_async(
        self,
        func: Callable[..., R] | str,
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callback | Signature | None = None,
        error_callback: Callback | None = None,
        *,
        timeout: float | None = None,
    ) -> MapResult[R]:
        """starmap's map_async."""
        return self._calls.map_async(func, iterable, chunksize, True, callback, error_callback, timeout)

    def apply_async(
        self,
        func: Callable[..., R] | str,
        args: Sequence[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        callback: Callback | None = None,
        error_callback: Callback | None = None,
        *,
        timeout: float | None = None,
    ) -> AsyncResult[R]:
        """func(*args, **kwds) as one task; `timeout` as in map."""
        return self._calls.apply_async(func, args, kwds, callback, error_callback, timeout, record=True)

    def apply(
        self,
        func: Callable[..., R] | str,
        args: Sequence[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> R:
        """func(*args, **kwds) on the cluster; blocks for the value."""
        result: AsyncResult[R] = self._calls.apply_async(func, args, kwds, None, None, timeout, record=False)
        return result.get()

    @overload
    def imap(
        self,
        func: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[R]: ...
    @overload
    def imap(
        self,
        func: str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[Any]: ...
    def imap(
        self,
        func: Callable[[Any], Any] | str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[Any]:
        """Lazily, func(x) for each x in order; no chunksize: adaptive chunks."""
        return self._calls.imap(func, iterable, chunksize, True, False, progress, timeout)

    @overload
    def imap_unordered(
        self,
        func: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[R]: ...
    @overload
    def imap_unordered(
        self,
        func: str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[Any]: ...
    def imap_unordered(
        self,
        func: Callable[[Any], Any] | str,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        timeout: float | None = None,
    ) -> IMapIterator[Any]:
        """Lazily, func(x) for each x in the order the results arrive."""
        return self._calls.imap(func, iterable, chunksize, False, False, progress, timeout)

    def put(self, value: Any) -> PutHandle:
        """Store `value` once (an array, or anything farpool sends); pass the handle in any call's
        arguments and the task receives the value itself, read at most once per worker process
        and shared by its tasks (its arrays read-only). Deleted when the pool ends (terminate,
        `with`, join), or by `handle.delete()`; `detach()` leaves it; it expires with the results."""
        self._check_running()
        return self._arrays.put(value)

    def attach(self, result_id: str) -> MapResult[Any] | AsyncResult[Any]:
        """The result of a map_async or apply_async sent by any producer, by its id.

        UnknownResult if none is known: never sent, already collected, or expired.
        """
        self._check_running()
        return attach_result(self._ledger, result_id)

    # -- life cycle ----------------------------------------------------------------------------

    @property
    def cluster_processes(self) -> int:
        """The total concurrency of the workers online when the pool started."""
        return self._cluster_processes

    @property
    def app(self) -> tasks.FarpoolCelery:
        """The farpool app this pool sends through."""
        return self._app

    def workers(self) -> list[WorkerInfo]:
        """The workers announced on this pool's queue now (tasks/presence.py): their hardware too."""
        return announced_workers(self._app, self._settings.queue)

    def close(self) -> None:
        """No more work will be submitted; join() then waits for what is in flight."""
        if self._state == RUN:
            self._state = CLOSE

    def terminate(self) -> None:
        """Revoke everything still queued or running for this pool, then stop."""
        if self._state == TERMINATE:
            return
        self._state = TERMINATE
        try:
            ledger = getattr(self, "_ledger", None)
            if ledger is not None:
                ledger.abandon(ledger.uncollected(), terminate=True)
                self._arrays.delete_values()
        finally:
            self._shutdown()

    def detach(self) -> None:
        """Close the pool and release it without revoking what is in flight.

        For work collected later, from any process, with producer.result(id).
        """
        self.close()
        self._shutdown(keep=True)

    def join(self) -> None:
        """Wait for all submitted work (after close()), then release the pool's resources."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        ledger = getattr(self, "_ledger", None)
        if ledger is not None:
            ledger.wait_idle()
            self._arrays.delete_values()
        self._shutdown()

    def _shutdown(self, keep: bool = False) -> None:
        """Release the pool's resources; `keep`: what it sent stays readable after this process."""
        ledger = getattr(self, "_ledger", None)
        if ledger is not None:
            self._arrays.close(keep)
            ledger.close()
            self._ledger = None  # type: ignore[assignment]
        self._local.stop(quick=not keep, detached=keep)  # kept: held results go to Redis as they end

    def __enter__(self) -> Self:
        self._check_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __del__(self) -> None:
        """As multiprocessing's: a running pool garbage-collected warns, and is terminated."""
        if getattr(self, "_state", None) == RUN:
            message = f"unclosed running farpool pool {self!r}"
            warnings.warn(message, ResourceWarning, stacklevel=2, source=self)
            terminate_quietly(self)
