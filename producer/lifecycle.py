"""A pool's life: the stdlib arguments it refuses, whether it runs, and its terminate at exit.

The pool's state lives in a `Life` of its own, which the pool's sending (producer/sending/calls.py)
checks too: it holds that, not the pool, so that a dropped pool is freed (and warns) at once.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Protocol

import redis
from kombu.exceptions import OperationalError

from tasks.references import is_importing_user_code

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
logger = logging.getLogger("farpool")


class Life:
    """RUN, CLOSE or TERMINATE; CLOSE until the pool is up: one that failed to start never runs."""

    def __init__(self) -> None:
        self.state = CLOSE

    def check_running(self) -> None:
        if self.state != RUN:
            raise ValueError("Pool not running")


def refuse(
    processes: int | None, initializer: Callable[..., object] | None, maxtasksperchild: int | None
) -> None:
    """multiprocessing.Pool's arguments that belong to the workers, and a pool made by a worker."""
    if processes is not None and processes < 1:
        raise ValueError("Number of processes must be at least 1")
    if initializer is not None:
        raise TypeError("initializer runs on the workers: connect it to Celery's worker_process_init signal")
    if maxtasksperchild is not None:
        raise TypeError(
            "maxtasksperchild is a worker setting: celery -A tasks worker --max-tasks-per-child N"
        )


def refuse_inside_worker() -> None:
    if is_importing_user_code():
        raise RuntimeError(
            "a Pool was created while a worker imported the script: the workers import it "
            "as multiprocessing's spawn does, so put its main code under "
            "`if __name__ == '__main__':`"
        )


class Terminable(Protocol):
    def terminate(self) -> None: ...


def terminate_quietly(pool: Terminable) -> None:
    """terminate(), with one line instead of a traceback when the broker is gone already."""
    try:
        pool.terminate()
    except (redis.RedisError, OSError, OperationalError) as error:
        logger.warning("farpool: could not revoke the pool's work (%s: %s)", type(error).__name__, error)


def stop_at_exit(pool_ref: weakref.ref[Terminable]) -> None:
    pool = pool_ref()
    if pool is not None:
        terminate_quietly(pool)
