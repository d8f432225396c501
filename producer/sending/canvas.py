"""The Celery signatures of a pool's calls: one executor message per chunk, labelled, with limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.canvas import Signature
from celery.utils import uuid

from producer.sending.chunking import split
from tasks.contract import CALL, chunk_arguments, executor, is_reference, short_name

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


def chunk_label(name: str, items: int, call: str, chunk: str) -> str:
    """What Flower shows for a chunk: `square × 1 item [map 1a2b3c4d, chunk 2/2]`.

    `call` names the map (or imap) by the first 8 characters of its id, the id that
    `farpool submit` prints, so that two producers' maps can be told apart.
    """
    plural = "item" if items == 1 else "items"
    return f"{short_name(name)} × {items} {plural} [{call}, chunk {chunk}]"


def short_id(call_id: str) -> str:
    return call_id[:8]


def map_signatures(
    app: Celery,
    name: str,
    items: Sequence[Any],
    size: int,
    star: bool,
    timeout: float | None,
    map_id: str,
) -> list[Signature]:
    """A chunk signature per `size` items, labelled `task × n items [map <id>, chunk i/k]` for Flower."""
    chunks = split(items, size) if items else []
    return [
        chunk_signature(
            app,
            name,
            chunk,
            index * size,
            star,
            chunk_label(name, len(chunk), f"map {short_id(map_id)}", f"{index + 1}/{len(chunks)}"),
            timeout=timeout,
        )
        for index, chunk in enumerate(chunks)
    ]


def apply_message(
    name: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[str, list[Any], dict[str, Any], dict[str, Any]]:
    """(task, args, kwargs, options) of an apply's one message: a registered task's own, or, for
    a plain function's reference, farpool.call, which resolves it on the worker, then calls it."""
    if not is_reference(name):
        return name, args, kwargs, options
    labels = {"argsrepr": f"{short_name(name)}(…)", "kwargsrepr": f"{{'function': {name!r}}}"}
    return CALL, [], {"function": name, "args": args, "kwargs": kwargs}, {**options, **labels}
