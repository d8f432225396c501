"""A user's own task module, loaded by the test workers through FARPOOL_INCLUDE=usertasks."""

from __future__ import annotations

import os
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


def returns_a_function(x: int) -> object:
    """A result neither pickle nor JSON can carry."""
    return lambda: x


def fail_or_mark(x: int, marker: str) -> int:
    """0 fails at once; anything else runs for a while, then leaves `marker` behind."""
    if x == 0:
        raise ValueError("item 0 fails")
    time.sleep(1.5)
    with open(marker, "w") as file:
        file.write(str(x))
    return x


def identity(value: object) -> object:
    return value


def arrived_as(value: object) -> str:
    """What the worker received, as repr shows it (types included)."""
    return repr(value)


def plain_nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def nap_until_file(path: str, limit: float) -> bool:
    """Sleeps until `path` exists (True) or `limit` seconds pass (False)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False
