"""The executor tasks: a registered task or a plain function run over a chunk of items in one
message, or called once (tasks/contract.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from tasks.contract import (
    CALL,
    GATHER,
    MAP_CHUNK,
    STARMAP_CHUNK,
    UnsendableResult,
    first_unsendable,
    is_internal,
    is_reference,
)
from tasks.encoding import Values
from tasks.references import RefusedTask, Worker, resolve, task_body
from tasks.script_requests import allowlist_for
from tasks.wire import load_record, record_key, timed_reply


def mappable_task(app: Celery, name: str, hostname: str | None = None) -> Task:
    """The user task registered on `app` as `name`; RefusedTask for built-ins and unknown names."""
    if is_internal(name):
        raise RefusedTask(f"task {name!r} is internal and cannot be mapped")
    try:
        return app.tasks[name]
    except KeyError:
        where = f"worker {hostname}" if hostname else "this worker"
        raise RefusedTask(
            f"task {name!r} is not registered on {where} "
            "(define it with @app.task in a module listed in FARPOOL_INCLUDE)"
        ) from None


def _checked_json(task_name: str, start: int, results: list[Any]) -> list[Any]:
    unsendable = first_unsendable(results)
    if unsendable is not None:
        offset, _ = unsendable
        raise UnsendableResult(
            f"{task_name!r} returned {type(results[offset]).__name__} for item "
            f"{start + offset}, which JSON cannot carry"
        )
    return results


def callable_for(app: Celery, name: str, hostname: str | None = None) -> Callable[..., Any]:
    """What a chunk calls per item: the plain function a reference names, or a task's body."""
    if is_reference(name):
        return resolve(name, allowlist_for(app, name), worker(app, hostname))
    return task_body(mappable_task(app, name, hostname))


def worker(app: Celery, hostname: str | None) -> Worker:
    """This worker, as a refusal names it."""
    return Worker(hostname, tuple(app.settings.import_path))


def _run(
    app: Celery,
    task: str,
    items: Sequence[Any],
    start: int,
    star: bool,
    timed: bool,
    timeout: float | None,
    hostname: str | None,
) -> Any:
    call = callable_for(app, task, hostname)
    results: list[Any] = []
    append = results.append
    began = time.perf_counter()
    try:
        if star:
            for item in items:
                append(call(*item))
        else:
            for item in items:
                append(call(item))
    except SoftTimeLimitExceeded:
        raise TimeoutError(
            f"task {task!r} exceeded its time limit ({timeout} s per item) at item {start + len(results)}"
        ) from None
    elapsed = time.perf_counter() - began
    results = _checked_json(task, start, results)
    values = Values(results)
    return timed_reply(elapsed, values) if timed else values


@shared_task(name=MAP_CHUNK, bind=True)
def map_chunk(
    self: Task,
    task: str,
    items: Sequence[Any],
    start: int = 0,
    timed: bool = False,
    timeout: float | None = None,
) -> Any:
    """[task(item) for item in items]; arguments as tasks.contract.ChunkArguments."""
    return _run(self.app, task, items, start, False, timed, timeout, self.request.hostname)


@shared_task(name=STARMAP_CHUNK, bind=True)
def starmap_chunk(
    self: Task,
    task: str,
    items: Sequence[Sequence[Any]],
    start: int = 0,
    timed: bool = False,
    timeout: float | None = None,
) -> Any:
    """[task(*item) for item in items], as map_chunk."""
    return _run(self.app, task, items, start, True, timed, timeout, self.request.hostname)


@shared_task(name=CALL, bind=True)
def call(self: Task, function: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
    """function(*args, **kwargs) for a plain function's reference (apply_async, Process)."""
    called = resolve(function, allowlist_for(self.app, function), worker(self.app, self.request.hostname))
    result = called(*args, **(kwargs or {}))
    if first_unsendable([result]) is not None:
        raise UnsendableResult(f"{function!r} returned {type(result).__name__}, which JSON cannot carry")
    return result


@shared_task(name=GATHER, bind=True, resolve_arguments=False)
def gather(self: Task, chunk_results: list[list[Any]], chunk_ids: list[str] | None = None) -> list[Any]:
    """The chord body of map_async: the chunks' results flattened in order, their keys deleted.

    The chunk ids come from the producer's record of the call, not from an argument: a chord
    copies its body into every chunk's message, so a list of N ids there made the map's
    messages grow as N² (10,000 chunks: 535 KB each, 5 GB in all).
    """
    backend = self.app.backend
    if chunk_ids is None:
        record = backend.client.get(record_key(str(self.request.id)))
        chunk_ids = list(load_record(record)["chunks"] or ()) if record else []
    keys = [backend.get_key_for_task(task_id) for task_id in chunk_ids]
    if keys:
        backend.client.delete(*keys)
    return [value for chunk in chunk_results for value in chunk]
