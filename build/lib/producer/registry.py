"""What a pool may call: a Celery task (by object or name) or a plain function (by reference)."""

from __future__ import annotations

import difflib
from typing import Any

from celery import Celery, Task
from celery.utils.imports import import_from_cwd

from producer.references import function_reference, script_task_reference
from tasks.contract import is_internal

HOW_TO_REGISTER = (
    "define it with @shared_task (or @app.task, from tasks import app) in a module listed in "
    "FARPOOL_INCLUDE, then pass the task or its name"
)


def task_name(func: Any, app: Celery) -> str:
    """What the chunks name: a task's registered name or a plain function's reference.

    TypeError/ValueError before sending. A name must be registered on `app`; the modules in its
    FARPOOL_INCLUDE are imported on first need, as the workers import them.
    """
    if isinstance(func, Task):
        script_task = script_task_reference(func.run)
        if script_task is not None:
            return script_task
        name = str(func.name)
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
