"""What every cluster-wide primitive shares: a checked name, its keys, its Redis, a server-side wait.

Each primitive lives in the farpool app's Redis (its result backend, the broker by default),
under `farpool-sync:<kind>:<name>`. It is found by name: a producer and its tasks that name the
same object share it, and an object passed to a task travels as its name and settings, in JSON
(tasks/encoding.py). A process waits on the server (BLPOP on the object's wake list, or a
pub/sub message), in slices shorter than the connection's socket timeout, never in a sleep loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from tasks.transport import RECONNECT_BACKOFF
from tasks.wire import SYNC_PREFIX

T = TypeVar("T")

NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
WAIT_SLICE = 2.0  # seconds per blocking call: below the connections' 3 s socket timeout
DEFAULT_LEASE = 60.0
RECONNECT_FOR = 15.0  # seconds a call keeps trying through a lost connection (a broker restart)


def reconnecting(call: Callable[[], T]) -> T:
    """`call()`, tried again while the connection is lost, for up to RECONNECT_FOR seconds.

    farpool's connections do not retry by themselves (tasks/transport.py). A script that ran
    but whose reply was lost runs again: a put may then be delivered twice, a slot taken twice
    (the extra one is freed when its lease ends).
    """
    deadline = time.monotonic() + RECONNECT_FOR
    for attempt in range(1_000):
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)])
    raise AssertionError("unreachable")


class _Reconnecting:
    """A redis-py client whose commands go through `reconnecting`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name in ("pubsub", "pipeline"):
            return attribute
        return lambda *args, **kwargs: reconnecting(lambda: attribute(*args, **kwargs))


def checked_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ValueError(
            f"{kind} name {name!r}: use 1 to 200 letters, digits and . _ : - (it names a Redis key)"
        )
    return name


def checked_lease(lease: Any) -> float:
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease <= 86_400:
        raise ValueError(f"lease {lease!r}: a number of seconds, more than 0 and at most 86400")
    return float(lease)


class Deadline:
    """How long a blocking call may still wait: None for ever."""

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
        self._end = None if timeout is None else time.monotonic() + max(float(timeout), 0.0)

    def remaining(self) -> float | None:
        return None if self._end is None else self._end - time.monotonic()

    def passed(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def slice(self, cap: float = WAIT_SLICE) -> float:
        """The next wait on the server: at most `cap`, at most what is left, at least 10 ms."""
        remaining = self.remaining()
        wait = cap if remaining is None else min(cap, remaining)
        return max(wait, 0.01)


KINDS: dict[str, type[Shared]] = {}  # what a JSON tag may rebuild: these classes, nothing else


class Shared:
    """A named object in the app's Redis. `app`: the farpool app (default: Celery's current app,
    which inside a task is the worker's)."""

    kind = "object"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        KINDS[cls.__name__] = cls

    def __json__(self) -> dict[str, Any]:
        """The arguments that rebuild this object elsewhere (its name, and settings)."""
        return {"name": self.name}

    def __init__(self, name: str, app: Any = None) -> None:
        self.name = checked_name(type(self).__name__, name)
        self._app = app

    @property
    def client(self) -> Any:
        if self._app is None:
            from celery import current_app

            self._app = current_app
        return _Reconnecting(self._app.backend.client)

    def key(self, suffix: str = "") -> str:
        return f"{SYNC_PREFIX}{self.kind}:{self.name}{suffix}"

    def wait_for_wake(self, deadline: Deadline, cap: float = WAIT_SLICE) -> None:
        """Block on the server until this object's wake list gets a token, or the slice ends."""
        self.client.blpop([self.key(":wake")], timeout=deadline.slice(cap))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (a worker hands a task's arguments to its pool process) as in JSON: by name
        and settings, without the app or anything held."""
        return rebuild, (type(self).__name__, self.__json__())


def rebuild(kind: str, arguments: dict[str, Any]) -> Shared:
    """The object a JSON tag or a pickle names: one of KINDS, by its arguments."""
    return KINDS[kind](**arguments)
