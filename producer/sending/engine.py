"""The engine under Pool: its life cycle (local cluster, ledger) and how each call is sent."""

from __future__ import annotations

import atexit
import functools
import logging
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Self, cast

import redis
from celery import chain, group
from celery.canvas import Signature
from celery.utils import uuid
from kombu.exceptions import OperationalError

import tasks
from producer.imap import IMapIterator
from producer.inflight.ledger import Ledger
from producer.inflight.lost import missing_tasks
from producer.inflight.withdraw import withdraw_queued
from producer.local.cluster import LocalCluster, WorkerInfo, announced_workers
from producer.local.start import serve_this_pool
from producer.results import AsyncResult, Callback, Callbacks, MapResult, Sent, attach_result
from producer.sending.arrays import PoolArrays
from producer.sending.callables import task_name
from producer.sending.canvas import apply_message, check_timeout, map_signatures, time_limits
from producer.sending.chunking import check_chunksize, check_json, default_chunksize, star_items
from producer.sending.handles import PutHandle
from producer.sending.imap_chunks import ImapChunks
from producer.sending.outgoing import Outgoing, array_bytes, call_arguments
from producer.sending.publishing import sending
from producer.sending.references import main_script
from tasks.contract import GATHER
from tasks.references import is_importing_user_code

if TYPE_CHECKING:
    from tqdm import tqdm

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
WINDOW_BYTES = 256 * 1024 * 1024  # a map's arrays past this go out through a window
logger = logging.getLogger("farpool")


class PoolEngine:
    """Pool's life cycle (close, join, terminate, the local cluster) and its sending (producer/pool.py)."""

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
    ) -> None:
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None:
            raise TypeError(
                "initializer runs on the workers: connect it to Celery's worker_process_init signal"
            )
        if maxtasksperchild is not None:
            raise TypeError(
                "maxtasksperchild is a worker setting: celery -A tasks worker --max-tasks-per-child N"
            )
        self._app: tasks.FarpoolCelery = app or tasks.app
        if is_importing_user_code():
            raise RuntimeError(
                "a Pool was created while a worker imported the script: the workers import it "
                "as multiprocessing's spawn does, so put its main code under "
                "`if __name__ == '__main__':`"
            )
        self._settings = self._app.settings
        self._state = CLOSE  # RUN once it is up; a pool that failed to start is never "running"
        self._local = LocalCluster(self._settings, self._app, script=main_script())
        self._local.start_broker(persistent=False)
        try:
            workers = [] if self._local.started_broker else announced_workers(self._app, self._settings.queue)
            serve_this_pool(self._local, self._settings, workers, start_local)
            logger.debug("workers online on queue %r: %s", self._settings.queue, [w.name for w in workers])
            cluster_processes = sum(worker.processes for worker in workers)
            self._cluster_processes = cluster_processes or self._settings.concurrency
            self._processes = processes or self._cluster_processes
            # The ledger's thread outlives a dropped pool: what it holds must not hold the pool.
            queue = self._settings.queue
            self._arrays = PoolArrays(self._app, self._settings, cast(Any, self._app.backend).client)
            self._ledger = Ledger(
                self._app,
                give_up_after=self._settings.broker_timeout,
                find_missing=functools.partial(missing_tasks, self._app, queue),
                withdraw=functools.partial(withdraw_queued, self._app, queue),
                release=self._arrays.release,
            )
        except BaseException:
            self._local.stop()
            raise
        atexit.register(_stop_at_exit, weakref.ref(self))
        self._state = RUN

    # -- bookkeeping ------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _progress_bar(self, total: int | None, show: bool) -> tqdm | None:
        if not show:
            return None
        from tqdm import tqdm  # only for a progress bar: 10-70 ms to import

        return tqdm(total=total, unit="item", disable=False)

    # -- map and starmap ----------------------------------------------------------------------

    def _map_signatures(
        self,
        func: Any,
        iterable: Iterable[Any],
        chunksize: int | None,
        star: bool,
        timeout: float | None,
        map_id: str,
    ) -> tuple[str, list[Signature], list[int]]:
        self._check_running()
        check_chunksize(chunksize)
        check_timeout(timeout)
        name = task_name(func, self._app)
        items = list(iterable)
        if star:
            items = star_items(items)
        outgoing = Outgoing(items, self._arrays.max_payload)
        items = outgoing.items
        check_json(items)
        size = chunksize or default_chunksize(len(items), self._processes)
        signatures = map_signatures(self._app, name, items, size, star, timeout, map_id)
        if outgoing.has_arrays:
            for signature in signatures:
                kwargs = signature.kwargs
                refs = outgoing.refs(kwargs["start"], len(kwargs["items"]))
                self._arrays.store(str(signature.id), refs)
        return name, signatures, [len(signature.kwargs["items"]) for signature in signatures]

    def _map_now(
        self,
        func: Any,
        iterable: Iterable[Any],
        chunksize: int | None,
        star: bool,
        progress: bool,
        timeout: float | None,
    ) -> list[Any]:
        """map and starmap: one group; or, when the items' arrays are larger than WINDOW_BYTES,
        the same chunks sent through imap's window, so that only the chunks in flight have a copy
        of their arrays (in memory files or in Redis) at any time, as multiprocessing pickles its
        tasks only as its pipe takes them."""
        items = list(iterable)
        if array_bytes(items) <= WINDOW_BYTES:
            return self._map(func, items, chunksize, star, progress, timeout).get()
        self._check_running()
        check_chunksize(chunksize)
        size = chunksize or default_chunksize(len(items), self._processes)
        iterator = self._imap(func, items, size, True, star, progress, timeout)
        try:
            return list(iterator)
        finally:
            iterator.close()  # after a failure: what is still in flight is abandoned

    def _map(
        self,
        func: Any,
        iterable: Iterable[Any],
        chunksize: int | None,
        star: bool,
        progress: bool,
        timeout: float | None,
        callback: Callback | None = None,
        error_callback: Callback | None = None,
    ) -> MapResult[Any]:
        map_id = uuid()
        name, signatures, lengths = self._map_signatures(func, iterable, chunksize, star, timeout, map_id)
        bar = self._progress_bar(sum(lengths), progress)
        chunk_ids = tuple(str(signature.id) for signature in signatures)
        sent = Sent(map_id, name, chunk_ids, tuple(lengths))
        on_progress = bar.update if bar is not None else None
        result: MapResult[Any] = MapResult(
            self._ledger, sent, Callbacks(callback, error_callback, on_progress)
        )
        if bar is not None:
            result._on_done(bar.close)
        if signatures:
            self._arrays.reply_in_memory(signatures)
            with sending(self._app) as producer:
                group(signatures, app=self._app).apply_async(producer=producer)
        return result

    def _map_async(
        self,
        func: Any,
        iterable: Iterable[Any],
        chunksize: int | None,
        star: bool,
        callback: Callback | Signature | None,
        error_callback: Callback | None,
        timeout: float | None,
    ) -> MapResult[Any]:
        map_id = uuid()
        name, signatures, lengths = self._map_signatures(func, iterable, chunksize, star, timeout, map_id)
        if not signatures:
            # Ready at once with [], as multiprocessing's, which never calls its callback then; a
            # Celery signature callback is sent [], as Celery's chord does for an empty header.
            if isinstance(callback, Signature):
                body = self._app.signature(dict(callback))  # rebuilt on this app: its broker and queue
                with sending(self._app) as producer:
                    body.apply_async(([],), producer=producer)
            return MapResult(self._ledger, Sent(map_id, name), Callbacks(None, error_callback))
        chunk_ids = tuple(str(signature.id) for signature in signatures)
        sent = Sent(map_id, name, chunk_ids, tuple(lengths), gathered=True, recorded=True)
        local_callback = None if isinstance(callback, Signature) else callback
        result: MapResult[Any] = MapResult(self._ledger, sent, Callbacks(local_callback, error_callback))
        gather = self._app.signature(GATHER, options={"task_id": map_id})  # ids: in the call's record
        body = chain(gather, callback) if isinstance(callback, Signature) else gather
        # A chord, sent as its header group with the body in each chunk's options: Celery's
        # chord.apply_async drops the producer, so its chunks would not go out in batches.
        # The chord's group id is the map's too: the ledger abandons it by that id.
        body.freeze(map_id, group_id=map_id)
        for signature in signatures:
            signature.options["chord"] = body
        with sending(self._app) as producer:
            group(signatures, app=self._app).apply_async(producer=producer, task_id=map_id)
        return result

    # -- apply -------------------------------------------------------------------------------

    def _apply_async(
        self,
        func: Any,
        args: Sequence[Any],
        kwds: Mapping[str, Any] | None,
        callback: Callback | None,
        error_callback: Callback | None,
        timeout: float | None,
        record: bool,
    ) -> AsyncResult[Any]:
        self._check_running()
        check_timeout(timeout)
        name = task_name(func, self._app)
        args, kwds, refs = call_arguments(args, kwds or {}, self._arrays.max_payload)
        check_json(args)
        check_json([kwds])
        sent = Sent(uuid(), name, recorded=record)
        self._arrays.store(sent.id, refs)
        result: AsyncResult[Any] = AsyncResult(self._ledger, sent, Callbacks(callback, error_callback))
        options: dict[str, Any] = {"task_id": sent.id, **(time_limits(timeout, 1) if timeout else {})}
        if headers := self._arrays.apply_headers(record):  # only this pool collects it: arrays in memory
            options["headers"] = headers
        task, task_args, task_kwargs, options = apply_message(name, list(args), kwds, options)
        with sending(self._app) as producer:
            self._app.send_task(task, args=task_args, kwargs=task_kwargs, producer=producer, **options)
        return result

    # -- imap ----------------------------------------------------------------------------------

    def _imap(
        self,
        func: Any,
        iterable: Iterable[Any],
        chunksize: int | None,
        ordered: bool,
        star: bool,
        progress: bool,
        timeout: float | None,
    ) -> IMapIterator[Any]:
        self._check_running()
        check_chunksize(chunksize)
        check_timeout(timeout)
        name = task_name(func, self._app)
        bar = self._progress_bar(len(iterable) if isinstance(iterable, Sized) else None, progress)
        submit = ImapChunks(self._app, self._arrays, name, star, timeout)
        return IMapIterator(
            self._ledger,
            submit,
            iterable,
            chunksize=chunksize,
            window=2 * self._processes,
            ordered=ordered,
            star=star,
            on_progress=bar.update if bar is not None else None,
            task_name=name,
        )

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
        self._local.stop(quick=not keep)  # kept: its processes' held results go to Redis as they end

    def _put(self, value: Any) -> PutHandle:
        self._check_running()
        return self._arrays.put(value)

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
            _terminate_quietly(self)


def _terminate_quietly(pool: PoolEngine) -> None:
    """terminate(), with one line instead of a traceback when the broker is gone already."""
    try:
        pool.terminate()
    except (redis.RedisError, OSError, OperationalError) as error:
        logger.warning("farpool: could not revoke the pool's work (%s: %s)", type(error).__name__, error)


def _stop_at_exit(pool_ref: weakref.ref[PoolEngine]) -> None:
    pool = pool_ref()
    if pool is not None:
        _terminate_quietly(pool)
