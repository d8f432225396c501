"""Splitting work into chunks, the stdlib's default chunksize, and JSON checks before sending."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from tasks.contract import first_unsendable


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
