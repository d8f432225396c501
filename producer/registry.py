"""Which tasks a pool may call: tasks registered on its app, by object or by name."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.utils.imports import import_from_cwd

from tasks.contract import is_internal

HOW_TO_REGISTER = (
    "define it with @shared_task (or @app.task, from tasks import app) in a module listed in "
    "FARPOOL_INCLUDE, then pass the task or its name"
)


def task_name(func: Any, app: Celery) -> str:
    """The registered name of `func` (a task or a name); TypeError/ValueError before sending.

    A name must be registered on `app`; the modules in its FARPOOL_INCLUDE are imported on
    first need, as the workers import them.
    """
    if isinstance(func, Task):
        name = str(func.name)
    elif isinstance(func, str):
        name = func
    else:
        raise TypeError(f"{func!r} is not a Celery task: {HOW_TO_REGISTER}")
    if is_internal(name):
        raise ValueError(f"task {name!r} is internal to Celery or farpool and cannot be mapped")
    if name not in app.tasks:
        for module in app.conf.include:
            import_from_cwd(module)  # as the workers import them
    if name not in app.tasks:
        raise ValueError(f"no task named {name!r} is registered: {HOW_TO_REGISTER}")
    return name
