"""A user's own task module, loaded by the test workers through FARPOOL_INCLUDE=usertasks."""

from __future__ import annotations

import time

from celery import Task, shared_task


@shared_task(name="usertasks.cube")
def cube(x: int) -> int:
    return x * x * x


@shared_task(name="usertasks.counted_nap", bind=True)
def counted_nap(self: Task, seconds: float, counter: str) -> float:
    """Nap, after counting the run in the result backend under `counter`; -1 raises."""
    self.app.backend.client.incr(counter)
    if seconds < 0:
        raise ValueError("asked to fail")
    time.sleep(seconds)
    return seconds


# Plain functions, called by reference: no decorator.
def plain_cube(x: int) -> int:
    return x * x * x


def plain_power(base: int, exponent: int = 2) -> int:
    return int(base**exponent)


def _private_double(x: int) -> int:
    return 2 * x
