"""The Celery signatures of a pool's calls: one executor message per chunk, labelled, with limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.canvas import Signature
from celery.utils import uuid

from producer.chunking import split
from tasks.contract import chunk_arguments, executor, short_name

HARD_LIMIT_GRACE = 2.0  # seconds past the soft limit before the worker kills the process


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


def time_limits(timeout: float, items: int) -> dict[str, float]:
    """Celery's limits for a message of `items` calls of at most `timeout` seconds each."""
    soft = timeout * items
    return {"soft_time_limit": soft, "time_limit": soft + max(HARD_LIMIT_GRACE, timeout)}


def chunk_signature(
    app: Celery,
    name: str,
    items: Sequence[Any],
    start: int,
    star: bool,
    label: str,
    timed: bool = False,
    timeout: float | None = None,
) -> Signature:
    """One executor message: `name` over `items`, the first being item `start` of the call."""
    # Flower and the task events show the label and the task, never the items themselves.
    summary = f"{{'task': {name!r}, 'start': {start}}}"
    options: dict[str, Any] = {"task_id": uuid(), "argsrepr": label, "kwargsrepr": summary}
    if timeout is not None:
        options.update(time_limits(timeout, len(items)))
    kwargs = chunk_arguments(name, items, start, timed, timeout)
    return app.signature(executor(star), kwargs=kwargs, options=options)


def map_signatures(
    app: Celery, name: str, items: Sequence[Any], size: int, star: bool, timeout: float | None
) -> list[Signature]:
    """A chunk signature per `size` items, labelled `task × n items [chunk i/k]` for Flower."""
    chunks = split(items, size) if items else []
    short = short_name(name)
    return [
        chunk_signature(
            app,
            name,
            chunk,
            index * size,
            star,
            f"{short} × {len(chunk)} items [chunk {index + 1}/{len(chunks)}]",
            timeout=timeout,
        )
        for index, chunk in enumerate(chunks)
    ]
