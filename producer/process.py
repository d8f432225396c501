"""producer.Process: the seed's Process, one task on the cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from producer.default_pool import default_pool
from producer.results import AsyncResult


class Process:
    """multiprocessing.Process's life cycle for a registered task run once on the cluster.

    exitcode is None while running, 0 on success and 1 if the task raised, as when a
    multiprocessing target raises; `result` holds the task's return value.
    """

    def __init__(
        self,
        target: Any = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if target is None:
            raise TypeError("Process needs a target: a registered task or its name")
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.name = name or f"Process-{id(self):x}"
        self._result: AsyncResult[Any] | None = None

    def start(self) -> None:
        if self._result is not None:
            raise AssertionError("cannot start a process twice")
        self._result = default_pool().apply_async(self._target, self._args, self._kwargs)

    def join(self, timeout: float | None = None) -> None:
        if self._result is None:
            raise AssertionError("can only join a started process")
        self._result.wait(timeout)
        if self._result.ready():
            self._result._collect()  # the value is held here from now on

    def is_alive(self) -> bool:
        return self._result is not None and not self._result.ready()

    @property
    def exitcode(self) -> int | None:
        if self._result is None or not self._result.ready():
            return None
        return 0 if self._result.successful() else 1

    @property
    def result(self) -> Any:
        """The task's return value (raises its exception) once it has ended."""
        if self._result is None:
            raise AssertionError("the process was not started")
        return self._result.get(0)

    @property
    def pid(self) -> str | None:
        """The task id: the cluster's name for this process."""
        return None if self._result is None else self._result.id
