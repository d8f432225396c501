"""What travels between a producer and a worker: executor names, chunk arguments, JSON checks.

Imported by both sides; it builds no app and does no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.pool import MaybeEncodingError
from typing import Any, TypedDict

from tasks import encoding

MAP_CHUNK = "farpool.map_chunk"
STARMAP_CHUNK = "farpool.starmap_chunk"
GATHER = "farpool.gather"
CALL = "farpool.call"
EXECUTORS = frozenset({MAP_CHUNK, STARMAP_CHUNK, GATHER, CALL})
# farpool's own modules: their functions are never called by reference.
FARPOOL_MODULES = ("tasks.chunks", "tasks.contract", "tasks.references")


class ChunkArguments(TypedDict, total=False):
    """The keyword arguments of MAP_CHUNK and STARMAP_CHUNK.

    task: the registered task to call per item, or a function reference ("module:name",
    tasks/references.py) resolved inside the worker's allowlist; items: the chunk; start: the first item's
    index in the whole map; timed: return [seconds computing, results]; timeout: seconds per
    item, only to name the limit in the error (Celery's soft limit enforces it).
    """

    task: str
    items: Sequence[Any]
    start: int
    timed: bool
    timeout: float | None


class UnsendableResult(MaybeEncodingError, TypeError):
    """A result JSON cannot carry: multiprocessing's MaybeEncodingError, and a TypeError."""

    def __init__(self, message: str) -> None:
        TypeError.__init__(self, message)  # args: (message,), as the result backend rebuilds it
        self.exc, self.value = message, ""

    def __str__(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r})"


def chunk_arguments(
    task: str, items: Sequence[Any], start: int, timed: bool = False, timeout: float | None = None
) -> ChunkArguments:
    arguments = ChunkArguments(task=task, items=items, start=start)
    if timed:
        arguments["timed"] = True
    if timeout is not None:
        arguments["timeout"] = timeout
    return arguments


def executor(star: bool) -> str:
    return STARMAP_CHUNK if star else MAP_CHUNK


def is_internal(name: object) -> bool:
    """Celery's own tasks and farpool's executors: never run as a mapped or applied task.

    Only these exact names: a user's unnamed task defined in a script is named `farpool.<name>`
    by Celery (the app's main name), and is not internal.
    """
    return not isinstance(name, str) or name.startswith("celery.") or name in EXECUTORS


def is_reference(name: str) -> bool:
    """True for a function reference ("module:name"), False for a registered task's name."""
    return ":" in name


def reference(module: str, name: str) -> str:
    return f"{module}:{name}"


def short_name(name: str) -> str:
    """The function's own name, for labels: `square` for `tasks.examples.square` or `demo:square`."""
    return name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def dumps(value: Any) -> str:
    """The JSON farpool sends for `value` (tasks/encoding.py: tuples, sets, dates, bytes...)."""
    return encoding.dumps([value])


def first_unsendable(values: Sequence[Any]) -> tuple[int, Exception] | None:
    """(offset, error) of the first value JSON cannot carry; None when all can."""
    if encoding.all_scalars(values):
        return None
    try:
        dumps(values)
        return None
    except (TypeError, ValueError):
        pass
    for offset, value in enumerate(values):
        try:
            dumps(value)
        except (TypeError, ValueError) as error:
            return offset, error
    return None
