"""producer.result(id): re-attach to a map_async (or apply_async) from any process."""

from __future__ import annotations

from typing import Any

import tasks
from producer.default_pool import default_pool
from producer.errors import UnknownResult
from producer.inflight.records import find_record
from producer.local.embedded import reachable
from producer.pool import Pool
from producer.results import AsyncResult, MapResult


def result(result_id: str, pool: Pool | None = None) -> MapResult[Any] | AsyncResult[Any]:
    """The MapResult of the map_async whose id this is (an AsyncResult for a single task).

    An unknown id is an UnknownResult at once: the process-wide pool (which may start a local
    cluster) is only made for an id that has something to collect.
    """
    if pool is None:
        app = tasks.app
        url = app.settings.backend_url
        # With no server yet, the pool starts the local one if it may, or says why not.
        if reachable(url) and find_record(app.backend, result_id) is None:
            raise UnknownResult(result_id, app.settings.result_expires)
        pool = default_pool()
    return pool.attach(result_id)
