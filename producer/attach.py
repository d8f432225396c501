"""producer.result(id): re-attach to a map_async (or apply_async) from any process."""

from __future__ import annotations

from producer.pool import Pool
from producer.results import AsyncResult, MapResult
from producer.shared import default_pool


def result(result_id: str, pool: Pool | None = None) -> MapResult | AsyncResult:
    """The MapResult of the map_async whose id this is (an AsyncResult for a single task)."""
    pool = pool or default_pool()
    return pool.attach(result_id)
