"""A user's NumPy functions, for tests/test_arrays.py (workers allow it through FARPOOL_INCLUDE)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np


def total(array: Any) -> float:
    return float(np.sum(array))


def doubled_in_place(array: Any) -> Any:
    """Writes into its argument, as a multiprocessing task may: the argument must be writable."""
    array *= 2
    return array


def described(value: Any) -> list[Any]:
    """What arrived: type, dtype, shape, Fortran order, writable."""
    if isinstance(value, np.ndarray):
        return [type(value).__name__, value.dtype.str, list(value.shape), bool(value.flags.f_contiguous)]
    return [type(value).__name__, repr(value)]


def seen_by(value: Any) -> list[int]:
    """This process and the identity of the value it received (a put value is read once)."""
    return [os.getpid(), id(value)]


def pair_sum(left: Any, right: Any, scale: float = 1.0) -> Any:
    return (left + right) * scale


def nested(value: dict[str, Any]) -> dict[str, Any]:
    return {"rows": [row * 2 for row in value["rows"]], "pair": (value["pair"][0], value["pair"][1] + 1)}


def put_on_queue(name: str, array: Any) -> int:
    from tasks.coordination import Queue

    Queue(name).put({"array": array, "sum": float(array.sum())})
    return len(array)


def slow_total(array: Any, seconds: float) -> float:
    import time

    time.sleep(seconds)
    return float(np.sum(array))


def sender_files(array: Any, pid: int) -> int:
    """How many farpool memory files process `pid` (the producer) holds open now."""
    count = 0
    for entry in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{entry}").startswith("/memfd:farpool-")
    return count
