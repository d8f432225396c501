"""Plain module-level functions: the stdlib pool's side of each workload, and the tasks' bodies."""

from __future__ import annotations

import time

TINY_SECONDS = 10e-6


def spin(seconds: float) -> int:
    """Busy-loop on the CPU for about `seconds`; returns the loop count (at least 1, even for
    a process descheduled past its deadline before its first check)."""
    deadline = time.perf_counter() + seconds
    count = 1
    while time.perf_counter() < deadline:
        count += 1
    return count


def square(x: float) -> float:
    """As tasks.examples.square."""
    return x * x


def burn(milliseconds: float) -> int:
    """As tasks.examples.burn: about `milliseconds` of CPU."""
    return spin(milliseconds / 1000)


def tiny(x: int) -> int:
    """About 10 µs of CPU, then x."""
    spin(TINY_SECONDS)
    return x
