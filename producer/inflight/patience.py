"""A producer's call that waits out a broker restart instead of failing with it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")
BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


def patiently(call: Callable[[], T], give_up_after: float) -> T:
    """`call()`, again and again while the server is unreachable, for up to `give_up_after`
    seconds (then its last error). Only for calls that may run twice."""
    deadline = time.monotonic() + give_up_after
    backoff = iter(BACKOFF)
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(next(backoff, BACKOFF[-1]))
