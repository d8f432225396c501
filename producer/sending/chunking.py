"""Splitting work into chunks: the stdlib's default chunksize, imap's adaptive one, and JSON checks
before sending."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from tasks.contract import first_unsendable

# A chunk's work ≈ 20 round trips, so the round trip costs ≤ 5 %: imap's sizer, and the advice's
# chunksize (producer/advice.py).
OVERHEAD_RATIO = 20


def default_chunksize(length: int, processes: int) -> int:
    """multiprocessing.Pool.map's rule: ceil(length / (4 × processes)), 0 for no items."""
    if length == 0:
        return 0
    return math.ceil(length / (4 * processes))


def check_chunksize(chunksize: int | None) -> None:
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ValueError(f"chunksize must be a positive integer, not {chunksize!r}")


def split(items: Sequence[Any], chunksize: int) -> list[Sequence[Any]]:
    """Consecutive slices of at most `chunksize` items."""
    return [items[start : start + chunksize] for start in range(0, len(items), chunksize)]


def star_items(items: Iterable[Any], start: int = 0) -> list[list[Any]]:
    """Each item as an argument list, for starmap; TypeError naming the first that is not one."""
    unpacked = []
    for index, item in enumerate(items, start):
        if isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
            raise TypeError(f"starmap item {index} is {type(item).__name__}, not a sequence of arguments")
        unpacked.append(list(item))
    return unpacked


def check_json(items: Sequence[Any], start: int = 0) -> None:
    """TypeError naming the first item that cannot be sent as JSON, before anything is sent."""
    unsendable = first_unsendable(items)
    if unsendable is not None:
        offset, error = unsendable
        item = items[offset]
        raise TypeError(f"item {start + offset} ({type(item).__name__}) cannot be sent as JSON: {error}")


class ChunkSizer:
    """joblib-style auto batching: size chunks so that the work in each dwarfs the round trip.

    The round-trip overhead is the smallest (arrival - sent - compute) seen, which filters
    out time spent queued; the per-item cost is a moving average of the workers' own timing.
    """

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
        target = min(max(OVERHEAD_RATIO * self.overhead, self.MIN_TARGET), self.MAX_TARGET)
        ideal = max(1, int(target / max(self.item_seconds, 1e-7)))
        self.size = max(1, min(ideal, self.size * self.MAX_GROWTH, self.MAX_ITEMS))
