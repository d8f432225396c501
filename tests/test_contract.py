"""The message contract and the chunk executors, on Celery's in-process worker: no subprocess.

A Celery app on the in-memory transport, served by `celery.contrib.testing.worker`
(a real Celery worker consumer, solo pool, in a thread), runs the same executor tasks the
prefork workers run, with the arguments the producer builds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import tasks.chunks
import tasks.examples  # noqa: F401 - and the example tasks
from tasks.chunks import RefusedTask
from tasks.contract import (
    GATHER,
    MAP_CHUNK,
    STARMAP_CHUNK,
    chunk_arguments,
    executor,
    first_unsendable,
    is_internal,
)

TIMEOUT = 10


@pytest.fixture(scope="module")
def app() -> Iterator[Celery]:
    app = Celery("contract", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    app.conf.broker_transport_options = {"polling_interval": 0.01}  # the memory transport polls
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app
    app.close()


def run(app: Celery, name: str, **kwargs: object) -> object:
    return app.send_task(name, kwargs=kwargs).get(timeout=TIMEOUT, interval=0.005)


def test_map_chunk_runs_the_task_over_its_items(app: Celery) -> None:
    arguments = chunk_arguments("tasks.examples.square", [1, 2, 3], start=0)
    assert run(app, MAP_CHUNK, **arguments) == [1, 4, 9]


def test_starmap_chunk_unpacks_each_item(app: Celery) -> None:
    arguments = chunk_arguments("tasks.examples.add", [[1, 2], [3, 4]], start=0)
    assert run(app, executor(star=True), **arguments) == [3, 7]


def test_a_timed_chunk_returns_its_compute_seconds_first(app: Celery) -> None:
    seconds, values = run(app, MAP_CHUNK, **chunk_arguments("tasks.examples.square", [2], 0, timed=True))  # type: ignore[misc]
    assert values == [4]
    assert seconds >= 0


@pytest.mark.parametrize("name", ["celery.backend_cleanup", GATHER, MAP_CHUNK, "no.such.task"])
@pytest.mark.parametrize("executor_name", [MAP_CHUNK, STARMAP_CHUNK])
def test_executors_refuse_internal_and_unknown_tasks(app: Celery, name: str, executor_name: str) -> None:
    items = [[1]] if executor_name == STARMAP_CHUNK else [1]
    with pytest.raises(RefusedTask, match=name.replace(".", r"\.")):
        run(app, executor_name, **chunk_arguments(name, items, 0))


def test_a_result_json_cannot_carry_names_the_task_and_the_item(app: Celery) -> None:
    with pytest.raises(TypeError, match=r"tasks\.examples\.unsendable.* item 12"):
        run(app, MAP_CHUNK, **chunk_arguments("tasks.examples.unsendable", [1, 1, 5], start=10))


def test_gather_flattens_the_chunks_in_order(app: Celery) -> None:
    assert run(app, GATHER, chunk_results=[[1, 2], [3]], chunk_ids=[]) == [1, 2, 3]


def test_chunk_arguments_carry_only_what_is_set() -> None:
    assert chunk_arguments("t", [1], 5) == {"task": "t", "items": [1], "start": 5}
    assert chunk_arguments("t", [1], 0, timed=True, timeout=2.0) == {
        "task": "t",
        "items": [1],
        "start": 0,
        "timed": True,
        "timeout": 2.0,
    }


@pytest.mark.parametrize("name", ["celery.chord_unlock", "farpool.gather", 7, None])
def test_internal_names(name: object) -> None:
    assert is_internal(name)


def test_a_user_task_is_not_internal() -> None:
    assert not is_internal("tasks.examples.square")


def test_first_unsendable_finds_the_first_value_json_cannot_carry() -> None:
    assert first_unsendable([1, "a", None, 2.5]) is None
    assert first_unsendable([[1], {"a": 1}]) is None
    found = first_unsendable([1, {2}, (3,), object()])  # sets and tuples travel (tasks/encoding.py)
    assert found is not None and found[0] == 3
