"""imap / imap_unordered: lazy input through a bounded window of chunks in flight."""

from __future__ import annotations

import contextlib
import itertools
import queue
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from celery import states

from producer.errors import TimeoutError
from producer.inflight.ledger import Ledger
from producer.results import remote_error
from producer.sending.chunking import ChunkSizer, check_json, star_items
from tasks.wire import read_timed_reply

Submit = Callable[[list[Any], int], str]
R = TypeVar("R")


class IMapIterator(Iterator[R], Generic[R]):
    """Yields results in input order (ordered) or completion order, submitting lazily."""

    def __init__(
        self,
        ledger: Ledger,
        submit: Submit,
        iterable: Iterable[Any],
        *,
        chunksize: int | None,
        window: int,
        ordered: bool,
        star: bool,
        on_progress: Callable[[int], object] | None = None,
        task_name: str | None = None,
    ) -> None:
        self._task_name = task_name
        self._ledger = ledger
        self._submit = submit
        self._source = iter(iterable)
        self._sizer = ChunkSizer() if chunksize is None else None
        self._chunksize = chunksize or 1
        self._window = window
        self._ordered = ordered
        self._star = star
        self._on_progress = on_progress
        self._arrivals: queue.Queue[tuple[str, dict[str, Any], float]] = queue.Queue()
        self._in_flight: dict[str, tuple[int, int, float]] = {}  # id -> (seq, length, sent)
        self._finished_chunks: dict[int, list[Any]] = {}
        self._values: deque[R] = deque()
        self._next_start = 0
        self._next_seq = 0
        self._next_to_yield = 0
        self._exhausted = False
        self._closed = False
        self._input_error: Exception | None = None  # raised by the input, after what came before
        self._input_error_seq = 0

    def __iter__(self) -> IMapIterator[R]:
        return self

    def __next__(self) -> R:
        return self.next()

    def next(self, timeout: float | None = None) -> R:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._values:
            if self._closed:
                raise StopIteration
            self._fill()
            if self._ordered and self._next_to_yield in self._finished_chunks:
                self._values.extend(self._finished_chunks.pop(self._next_to_yield))
                self._next_to_yield += 1
                continue
            if self._input_error is not None and (
                self._next_to_yield == self._input_error_seq if self._ordered else not self._in_flight
            ):
                error, self._input_error = self._input_error, None
                self.close()
                raise error
            if not self._in_flight:
                self.close()
                raise StopIteration
            self._take_arrival(deadline)
        return self._values.popleft()

    def _fill(self) -> None:
        while not self._exhausted and len(self._in_flight) + len(self._finished_chunks) < self._window:
            size = self._sizer.size if self._sizer is not None else self._chunksize
            items: list[Any] = []
            try:
                items.extend(itertools.islice(self._source, size))
            except Exception as error:  # the input itself raised: its values so far come first
                self._exhausted = True
                self._input_error = error
                if self._sizer is None:
                    items = []  # as multiprocessing, which loses the chunk it was reading
                self._input_error_seq = self._next_seq + (1 if items else 0)
            if not items:
                self._exhausted = True
                return
            if self._star:
                items = star_items(items, self._next_start)
            check_json(items, self._next_start)
            sent = time.perf_counter()
            task_id = self._submit(items, self._next_start)
            self._in_flight[task_id] = (self._next_seq, len(items), sent)
            self._ledger.expect([task_id], self)
            self._next_seq += 1
            self._next_start += len(items)

    def _set(self, task_id: str, meta: dict[str, Any]) -> None:
        self._arrivals.put((task_id, meta, time.perf_counter()))

    def _take_arrival(self, deadline: float | None) -> None:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            task_id, meta, arrived = self._arrivals.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError(f"no imap result within {remaining} s") from None
        seq, length, sent = self._in_flight.pop(task_id)
        self._ledger.collect([task_id])
        if meta["status"] != states.SUCCESS:
            self.close()
            raise remote_error(meta, self._task_name)
        compute, values = read_timed_reply(meta["result"])
        if self._sizer is not None:
            self._sizer.observe(length, compute, arrived - sent)
        if self._on_progress is not None:
            self._on_progress(length)
        if self._ordered:
            self._finished_chunks[seq] = values
        else:
            self._values.extend(values)

    def close(self) -> None:
        """Stop: revoke the chunks still in flight and delete whatever they store later."""
        if self._closed:
            return
        self._closed = True
        leftovers = list(self._in_flight)
        self._in_flight.clear()
        self._finished_chunks.clear()
        if leftovers:
            self._ledger.abandon(leftovers)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
