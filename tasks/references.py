"""Plain functions called by reference ("module:name"), only inside the worker's allowlist.

A message carries a reference, never code. The worker calls it only if the module is in its
allowlist (tasks.examples, farpool's demo script, FARPOOL_INCLUDE, and FARPOOL_ALLOW, where
a pool lists its script for the local worker it starts) and the name is a plain function
defined in that very module: not a builtin, not a class or other callable, not a function the
module merely imported (`helpers:run` after `from subprocess import run`), not a nested or
private-to-a-class one. Anything else is refused before it runs.
"""

from __future__ import annotations

import importlib
import os
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Task
from celery.local import Proxy
from celery.utils.objects import mro_lookup

from config import BUILT_IN_ALLOWED
from tasks.contract import FARPOOL_MODULES
from tasks.errors import FOLDER, RefusedTask

_importing = threading.local()


def mark_importing_user_code(active: bool) -> None:
    """A worker is importing a user's module: a Pool created now is a script without a main guard."""
    _importing.active = active


@contextmanager
def importing_user_code() -> Iterator[None]:
    mark_importing_user_code(True)
    try:
        yield
    finally:
        mark_importing_user_code(False)


def is_importing_user_code() -> bool:
    return bool(getattr(_importing, "active", False))


def overrides_call(task: Task) -> bool:
    """True if the task defines its own __call__.

    Otherwise the chunk calls the plain function, as Celery's tracer does for a message:
    Task.__call__ per item (request stack, context) costs ~18 µs. The worker patches
    Task.__call__ from celery.app.trace, so both modules count as stock Celery, and so does
    farpool's own base class (tasks/payload.py: its arrays are the chunk's, handled once).
    """
    stock = ["celery.app.task", "celery.app.trace", "tasks.payload"]
    stop = {Task, object, *(base for base in type(task).mro() if base.__module__ == "tasks.payload")}
    return bool(mro_lookup(type(task), "__call__", stop=stop, monkey_patched=stock))


def task_body(task: Task) -> Callable[..., Any]:
    """What a chunk calls per item for a task: its plain function, unless it defines __call__."""
    return task if overrides_call(task) else task.run


def allowlist(include: Sequence[str]) -> tuple[str, ...]:
    """The modules whose functions may be called by reference: the worker's includes, less farpool's own."""
    return tuple(module for module in include if module not in FARPOOL_MODULES)


@dataclass(frozen=True)
class Worker:
    """Who resolves a reference, for the refusal's hint: its name, and its FARPOOL_IMPORT_PATH."""

    hostname: str | None = None
    import_path: tuple[str, ...] = ()


def _refuse(
    reference: str, why: str, include: Sequence[str], worker: Worker, module: str | None = None
) -> RefusedTask:
    allowed = allowlist(include)
    users = [name for name in allowed if name not in BUILT_IN_ALLOWED]
    fix = ""
    if module is not None:
        folders = os.pathsep.join([*worker.import_path, FOLDER])
        fix = f"; to allow it, start that worker with FARPOOL_INCLUDE={','.join([*users, module])} "
        fix += f"FARPOOL_IMPORT_PATH={folders}"
    shown = ", ".join(allowed) or "nothing"
    listed = f"allowed on this worker, from FARPOOL_INCLUDE and farpool's examples: {shown}"
    by = f" by worker {worker.hostname}" if worker.hostname else ""
    return RefusedTask(f"function {reference!r} refused{by}: {why} ({listed}){fix}", *filter(None, [module]))


def resolve(reference: str, include: Sequence[str], worker: Worker = Worker()) -> Callable[..., Any]:
    """The plain function `reference` names, if the allowlist admits it; RefusedTask otherwise."""
    module_name, _, name = reference.partition(":")
    if module_name in FARPOOL_MODULES:
        raise _refuse(reference, f"{module_name!r} is farpool's own module", include, worker)
    if module_name not in allowlist(include):
        why = f"module {module_name!r} is not in FARPOOL_INCLUDE"
        listable = module_name if all(part.isidentifier() for part in module_name.split(".")) else None
        raise _refuse(reference, why, include, worker, listable)
    if not name.isidentifier():
        why = f"{name!r} is not the name of a function defined at the top level of {module_name!r}"
        raise _refuse(reference, why, include, worker)
    with importing_user_code():  # imported on first use: a script the local cluster allows
        module = importlib.import_module(module_name)
    target = vars(module).get(name)
    if isinstance(target, Proxy):  # a @shared_task
        target = target._get_current_object()
    if isinstance(target, Task) and target.run.__module__ == module_name and target.run.__name__ == name:
        return task_body(target)  # a task defined in the script, sent by reference
    if not isinstance(target, types.FunctionType):
        what = "nothing" if target is None else f"a {type(target).__name__}"
        why = f"{module_name}.{name} is {what}, not a plain function"
        raise _refuse(reference, why, include, worker)
    if target.__module__ != module_name or target.__qualname__ != name:
        why = (
            f"{module_name}.{name} is {target.__module__}.{target.__qualname__}, "
            f"imported into {module_name!r}, not defined there"
        )
        raise _refuse(reference, why, include, worker)
    return target
