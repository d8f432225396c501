"""Which tasks a pool may call: registered user tasks, by object or by name."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.utils.imports import import_from_cwd

import tasks
from tasks.chunks import INTERNAL_PREFIXES

HOW_TO_REGISTER = (
    "define it with @app.task (from tasks import app) in a module listed in FARPOOL_INCLUDE, "
    "then pass the task or its name"
)


def task_name(func: Any, app: Celery) -> str:
    """The registered name of `func` (a task or a name); TypeError/ValueError before sending.

    Tasks register on farpool's app (`from tasks import app`); the modules in `app`'s
    FARPOOL_INCLUDE are imported on first need, as the workers import them.
    """
    if isinstance(func, Task):
        name = str(func.name)
    elif isinstance(func, str):
        name = func
    else:
        raise TypeError(f"{func!r} is not a Celery task: {HOW_TO_REGISTER}")
    if name.startswith(INTERNAL_PREFIXES):
        raise ValueError(f"task {name!r} is internal to Celery or farpool and cannot be mapped")
    registry = tasks.app.tasks
    if name not in registry:
        for module in app.conf.include:
            import_from_cwd(module)  # as the workers import them
    if name not in registry:
        raise ValueError(f"no task named {name!r} is registered: {HOW_TO_REGISTER}")
    return name
