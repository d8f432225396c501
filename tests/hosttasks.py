"""What the hosts' workers run (tests/test_hosts.py): plain functions, by reference."""

from __future__ import annotations

import socket
import time
from typing import Any


def where(milliseconds: float) -> str:
    """Spin the CPU for about `milliseconds`, then say which host did it."""
    deadline = time.perf_counter() + milliseconds / 1000
    while time.perf_counter() < deadline:
        pass
    return socket.gethostname()


def numbered(index: int, milliseconds: float) -> list[object]:
    """[index, host]: which item ran where, to check that each result arrives exactly once."""
    return [index, where(milliseconds)]


def array_where(index: int, array: Any, table: Any, milliseconds: float) -> list[object]:
    """[index, host, array's sum + table[index]]: arrays and a put value, across hosts."""
    host = where(milliseconds)
    return [index, host, float(array.sum() + table[index])]
