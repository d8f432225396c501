"""How a pool sends its calls: map, starmap, their async forms, apply_async and imap, each checked,
split into chunks and published; Pool (producer/pool.py) owns the life cycle and calls these."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any

from celery import chain, group
from celery.canvas import Signature
from celery.utils import uuid

import tasks
from producer.imap import IMapIterator
from producer.inflight.ledger import Ledger
from producer.results import AsyncResult, Callback, Callbacks, MapResult, Sent
from producer.sending.arrays import PoolArrays
from producer.sending.callables import task_name
from producer.sending.canvas import apply_message, check_timeout, map_signatures, time_limits
from producer.sending.chunking import check_chunksize, check_json, default_chunksize, star_items
from producer.sending.imap_chunks import ImapChunks
from producer.sending.outgoing import Outgoing, array_bytes, call_arguments
from producer.sending.publishing import sending
from tasks.contract import GATHER

if TYPE_CHECKING:
    from tqdm import tqdm

WINDOW_BYTES = 256 * 1024 * 1024  # a map's arrays past this go out through a window
logger = logging.getLogger("farpool")


class Calls:
    """How a pool sends each call: checked, split, its arrays stored, published in batches, and
    handed to the result that receives it (producer/pool.py's methods call these)."""

    def __init__(
        self,
        app: tasks.FarpoolCelery,
        arrays: PoolArrays,
        ledger: Ledger,
        processes: int,
        check_running: Callable[[], None],
    ) -> None:
        self._app, self._arrays, self._ledger = app, arrays, ledger
        self._processes = processes  # the stdlib's part: default chunksize, imap's window
        self._check_running = check_running

    def progress_bar(self, total: int | None, show: bool) -> tqdm | None:
        if not show:
            return None
        from tqdm import tqdm  # only for a progress bar: 10-70 ms to import

        return tqdm(total=total, unit="item", disable=False)

    # -- map and starmap ----------------------------------------------------------------------

    def prepare_map(
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

    def map_now(
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
            return self.map(func, items, chunksize, star, progress, timeout).get()
        self._check_running()
        check_chunksize(chunksize)
        size = chunksize or default_chunksize(len(items), self._processes)
        iterator = self.imap(func, items, size, True, star, progress, timeout)
        try:
            return list(iterator)
        finally:
            iterator.close()  # after a failure: what is still in flight is abandoned

    def map(
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
        name, signatures, lengths = self.prepare_map(func, iterable, chunksize, star, timeout, map_id)
        bar = self.progress_bar(sum(lengths), progress)
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

    def map_async(
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
        name, signatures, lengths = self.prepare_map(func, iterable, chunksize, star, timeout, map_id)
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

    def apply_async(
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

    def imap(
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
        bar = self.progress_bar(len(iterable) if isinstance(iterable, Sized) else None, progress)
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
