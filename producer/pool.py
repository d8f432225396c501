"""Pool: multiprocessing.Pool's API, typed, with the work running on Celery workers.

`func` is a plain function defined at the top level of a module or of the script, a Celery
task, or a task's name (producer/sending/callables.py); mypy infers what each call returns from a typed
function or task, and `Any` from a name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

from celery.canvas import Signature

from producer.imap import IMapIterator
from producer.results import AsyncResult, Callback, MapResult
from producer.sending.engine import PoolEngine
from producer.sending.handles import PutHandle

T = TypeVar("T")
R = TypeVar("R")


class Pool(PoolEngine):
    """A pool whose processes are the prefork processes of the Celery workers on the broker.

    `processes` plays the stdlib's part in the default chunksize and the imap window; the
    cluster's own size is set where the workers run (FARPOOL_CONCURRENCY on each host).
    `initializer` and `maxtasksperchild` belong to the workers and are refused here.
    With no worker online and a loopback broker, the pool starts a local worker for its
    lifetime unless `start_local` is False (then NoWorkersError says how to start one).
    """

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
        return self._map_now(func, iterable, chunksize, False, progress, timeout)

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
        return self._map_now(func, iterable, chunksize, True, progress, timeout)

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
        return self._map_async(func, iterable, chunksize, False, callback, error_callback, timeout)

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
        return self._map_async(func, iterable, chunksize, True, callback, error_callback, timeout)

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
        return self._apply_async(func, args, kwds, callback, error_callback, timeout, record=True)

    def apply(
        self,
        func: Callable[..., R] | str,
        args: Sequence[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> R:
        """func(*args, **kwds) on the cluster; blocks for the value."""
        result: AsyncResult[R] = self._apply_async(func, args, kwds, None, None, timeout, record=False)
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
        return self._imap(func, iterable, chunksize, True, False, progress, timeout)

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
        return self._imap(func, iterable, chunksize, False, False, progress, timeout)

    def put(self, value: Any) -> PutHandle:
        """Store `value` once (an array, or anything farpool sends); pass the handle in any call's
        arguments and the task receives the value itself, read at most once per worker process
        and shared by its tasks (its arrays read-only). Deleted when the pool ends (terminate,
        `with`, join), or by `handle.delete()`; `detach()` leaves it; it expires with the results."""
        return self._put(value)
