"""The process-wide default pool behind producer.result() and producer.Process."""

from __future__ import annotations

import threading

from producer.pool import Pool

_lock = threading.Lock()
_pool: Pool | None = None


def default_pool() -> Pool:
    """One Pool for this process, created on first use (it may start the local cluster)."""
    global _pool
    with _lock:
        if _pool is None or _pool._state != "RUN":
            _pool = Pool()
        return _pool
