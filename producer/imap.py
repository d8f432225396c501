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
from producer.sending.chunking import check_json, star_items

Submit = Callable[[list[Any], int], str]
R = TypeVar("R")


class ChunkSizer:
    """joblib-style auto batching: size chunks so that the work in each dwarfs the round trip.

    The round-trip overhead is the smallest (arrival - sent - compute) seen, which filters
    out time spent queued; the per-item cost is a moving average of the workers' own timing.
    """

    OVERHEAD_RATIO = 20  # work per chunk ≈ 20 × overhead: the round trip costs ≤ 5 %
    MIN_TARGET, MAX_TARGET = 0.005, 1.0  # seconds of work per chunk
    MAX_GROWTH = 16
    MAX_ITEMS = 20_000  # bounds memory: at most window × this many items in flight

    def __init__(self) -> None:
        self.size = 1
        self.item_seconds: float | None = None
        self.overhead: float | None = None

    def observe(self, length: int, compute: float, round_trip: float) -> None:
        per_item = compute / max(length, 1)
        self.item_seconds = (
            per_item if self.item_seconds is None else 0.5 * self.item_seconds + 0.5 * per_item
        )
        overhead = max(round_trip - compute, 1e-4)
        self.overhead = overhead if self.overhead is None else min(self.overhead, overhead)
        target = min(max(self.OVERHEAD_RATIO * self.overhead, self.MIN_TARGET), self.MAX_TARGET)
        ideal = max(1, int(target / max(self.item_seconds, 1e-7)))
        self.size = max(1, min(ideal, self.size * self.MAX_GROWTH, self.MAX_ITEMS))


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
            self._ledger.expect([task_id], self._arrived)
            self._next_seq += 1
            self._next_start += len(items)

    def _arrived(self, task_id: str, meta: dict[str, Any]) -> None:
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
        compute, values = meta["result"]
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
