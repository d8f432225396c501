"""An empty map_async (issue 21): ready at once with [], as multiprocessing's, nothing sent.

A chord of no chunks never runs its gather task, so before the fix get() waited for ever.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Cluster
from helpers import poll, result_keys

from producer import Pool
from tasks.examples import add, identity, square
from tasks.wire import RECORD_PREFIX

READY = 10.0  # a generous bound on get() for what is ready at once: a hang fails, not blocks


def plain_square(x: float) -> float:
    return x * x


def plain_add(a: float, b: float) -> float:
    return a + b


EMPTY_CALLS: list[tuple[str, Callable[[Any, bool, Callable[[Any], object]], Any]]] = [
    ("map_async", lambda p, ours, cb: p.map_async(square if ours else plain_square, [], callback=cb)),
    (
        "map_async chunksize=1",
        lambda p, ours, cb: p.map_async(square if ours else plain_square, [], chunksize=1, callback=cb),
    ),
    ("starmap_async", lambda p, ours, cb: p.starmap_async(add if ours else plain_add, [], callback=cb)),
]


@pytest.fixture(scope="module")
def stdlib_pool() -> Iterator[Any]:
    with multiprocessing.get_context("forkserver").Pool(1) as pool:
        yield pool


@pytest.mark.parametrize(("name", "call"), EMPTY_CALLS, ids=[name for name, _ in EMPTY_CALLS])
def test_an_empty_map_async_is_ready_at_once_as_multiprocessing(
    name: str, call: Callable[[Any, bool, Callable[[Any], object]], Any], cluster: Cluster, stdlib_pool: Any
) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    ours: list[Any] = []
    theirs: list[Any] = []
    with cluster.pool() as pool:
        result = call(pool, True, ours.append)
        assert result.get(READY) == call(stdlib_pool, False, theirs.append).get(READY) == []
        assert result.ready() and result.successful()
        assert client.llen(cluster.settings.queue) == 0, "an empty map sent a message"
        assert not client.exists(RECORD_PREFIX + result.id)
    assert ours == theirs  # multiprocessing's MapResult of no items never calls its callback
    assert result_keys(client) == before


def test_an_empty_map_async_with_a_celery_signature_sends_it_with_an_empty_list(cluster: Cluster) -> None:
    """As Celery's chord with an empty header: its body runs at once, on []."""
    callback_id = str(uuid.uuid4())
    app = cluster.app
    with Pool(app=app) as pool:
        assert pool.map_async(square, [], callback=identity.s().set(task_id=callback_id)).get(READY) == []
    try:
        poll(lambda: app.backend.client.exists(app.backend.get_key_for_task(callback_id)), "the callback")
        assert app.AsyncResult(callback_id).get(timeout=READY) == []
    finally:
        app.backend.client.delete(app.backend.get_key_for_task(callback_id))
