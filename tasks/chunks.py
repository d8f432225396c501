"""The tasks that run a registered task over a chunk of items in one message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.objects import mro_lookup

from tasks.app import app

INTERNAL_PREFIXES = ("celery.", "farpool.")


class RefusedTask(ValueError):
    """A chunk named a task that is not registered here, or one not meant to be mapped."""


def mappable_task(name: str) -> Task:
    """The registered user task called `name`; RefusedTask for built-ins and unknown names."""
    if not isinstance(name, str) or name.startswith(INTERNAL_PREFIXES):
        raise RefusedTask(f"task {name!r} is internal and cannot be mapped")
    try:
        return app.tasks[name]
    except KeyError:
        raise RefusedTask(
            f"task {name!r} is not registered on this worker "
            "(define it with @app.task in a module listed in FARPOOL_INCLUDE)"
        ) from None


JSON_SCALARS = frozenset({int, float, str, bool, type(None)})


def _checked_json(task_name: str, start: int, results: list[Any]) -> list[Any]:
    if all(type(value) in JSON_SCALARS for value in results):
        return results
    try:
        json.dumps(results)
    except (TypeError, ValueError):
        for offset, value in enumerate(results):
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"task {task_name!r} returned {type(value).__name__} for item "
                    f"{start + offset}, which JSON cannot carry"
                ) from None
    return results


def overrides_call(task: Task) -> bool:
    """True if the task defines its own __call__.

    Otherwise the chunk calls the plain function, as Celery's tracer does for a message:
    Task.__call__ per item (request stack, context) costs ~18 µs. The worker patches
    Task.__call__ from celery.app.trace, so both modules count as stock Celery.
    """
    stock = ["celery.app.task", "celery.app.trace"]
    return bool(mro_lookup(type(task), "__call__", stop={Task, object}, monkey_patched=stock))


def _run(
    task_name: str, items: Sequence[Any], start: int, star: bool, timed: bool, timeout: float | None
) -> Any:
    task = mappable_task(task_name)
    call: Callable[..., Any] = task if overrides_call(task) else task.run
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
            f"task {task_name!r} exceeded its time limit ({timeout} s per item) "
            f"at item {start + len(results)}"
        ) from None
    elapsed = time.perf_counter() - began
    results = _checked_json(task_name, start, results)
    return [elapsed, results] if timed else results


@app.task(name="farpool.map_chunk")
def map_chunk(
    task_name: str,
    items: Sequence[Any],
    start: int = 0,
    timed: bool = False,
    timeout: float | None = None,
) -> Any:
    """[task(item) for item in items]; `start` is the first item's index in the whole map.

    With `timed`, [seconds spent computing, results]: imap sizes its chunks from it.
    `timeout` (per item) only names the limit in the error; Celery's soft limit enforces it.
    """
    return _run(task_name, items, start, star=False, timed=timed, timeout=timeout)


@app.task(name="farpool.starmap_chunk")
def starmap_chunk(
    task_name: str,
    items: Sequence[Sequence[Any]],
    start: int = 0,
    timed: bool = False,
    timeout: float | None = None,
) -> Any:
    """[task(*item) for item in items], as map_chunk."""
    return _run(task_name, items, start, star=True, timed=timed, timeout=timeout)


@app.task(name="farpool.gather")
def gather(chunk_results: list[list[Any]], chunk_ids: list[str]) -> list[Any]:
    """The chord body of map_async: the chunks' results flattened in order, their keys deleted."""
    keys = [app.backend.get_key_for_task(task_id) for task_id in chunk_ids]
    if keys:
        app.backend.client.delete(*keys)
    return [value for chunk in chunk_results for value in chunk]
