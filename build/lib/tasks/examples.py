"""Example tasks: the seed's `square` and a few CPU-bound samples."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(name="tasks.examples.square")
def square(x: float) -> float:
    """The seed example."""
    return x * x


@shared_task(name="tasks.examples.add")
def add(a: float, b: float) -> float:
    """Two arguments, for starmap."""
    return a + b


@shared_task(name="tasks.examples.burn")
def burn(milliseconds: float) -> int:
    """Spin the CPU for about `milliseconds`; returns the loop count (at least 1)."""
    deadline = time.perf_counter() + milliseconds / 1000
    count = 1  # at least one loop, even when descheduled past the deadline before the first check
    while time.perf_counter() < deadline:
        count += 1
    return count


@shared_task(name="tasks.examples.count_primes")
def count_primes(limit: int) -> int:
    """How many primes are below `limit`, by trial division: pure CPU."""
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


@shared_task(name="tasks.examples.fail_on")
def fail_on(x: int, bad: int = 3) -> int:
    """x, or ValueError when x == bad: for error-path tests and demos."""
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


@shared_task(name="tasks.examples.nap")
def nap(seconds: float) -> float:
    """Sleep, then return `seconds`: a stand-in for a slow or hanging call."""
    time.sleep(seconds)
    return seconds


@shared_task(name="tasks.examples.unsendable")
def unsendable(x: int) -> object:
    """An object() for x > 1: a result farpool's JSON cannot carry, for the error path."""
    return object() if x > 1 else x


@shared_task(name="tasks.examples.identity")
def identity(x: object) -> object:
    """x itself: what moving an item to a worker and back costs, with no work."""
    return x
