"""What a pool may call: a Celery task (by object or name) or a plain function (by reference)."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from celery import Celery, Task
from celery.utils.imports import import_from_cwd

from producer.sending.references import function_reference, script_task_reference
from tasks.contract import is_internal, is_reference

HOW_TO_REGISTER = (
    "define it with @shared_task (or @app.task, from tasks import app) in a module listed in "
    "FARPOOL_INCLUDE, then pass the task or its name"
)


def checked_reference(text: str) -> str:
    """A plain function named as `module:function` (as `farpool tasks` lists them): sent as it is,
    the worker's allowlist decides; ValueError if it is not of that form."""
    module, _, function = text.partition(":")
    if not (module and all(part.isidentifier() for part in module.split(".")) and function.isidentifier()):
        raise ValueError(
            f"{text!r} is not a function reference: expected module:function, such as "
            "producer.demo.pool_multiprocessing:square (or a task's registered name)"
        )
    return text


def local_function(name: str, app: Celery) -> Any:
    """What `name` (a task's name or a `module:function` reference) calls, in this process."""
    if not is_reference(name):
        return app.tasks[name].run
    module, _, function = name.partition(":")
    found = getattr(importlib.import_module(module), function, None)
    if not callable(found):
        raise ValueError(f"{name!r}: {module} has no function {function!r}")
    return found


def task_name(func: Any, app: Celery) -> str:
    """What the chunks name: a task's registered name or a plain function's reference.

    TypeError/ValueError before sending. A name must be registered on `app` (the modules in its
    FARPOOL_INCLUDE are imported on first need, as the workers import them), or be a plain
    function's reference, `module:function`, which the workers' allowlist admits or refuses.
    """
    if isinstance(func, Task):
        script_task = script_task_reference(func.run)
        if script_task is not None:
            return script_task
        name = str(func.name)
    elif isinstance(func, str) and is_reference(func):
        return checked_reference(func)
    elif isinstance(func, str):
        name = func
    elif callable(func):
        return function_reference(func)
    else:
        raise TypeError(f"{func!r} is not callable: pass a function, a Celery task or a task's name")
    if is_internal(name):
        raise ValueError(f"task {name!r} is internal to Celery or farpool and cannot be mapped")
    if name not in app.tasks:
        for module in app.conf.include:
            import_from_cwd(module)  # as the workers import them
    if name not in app.tasks:
        known = [task for task in app.tasks if not is_internal(task)]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.9)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"no task named {name!r} is registered: {hint}`farpool tasks` lists what the workers "
            f"can run; {HOW_TO_REGISTER}"
        )
    return name
