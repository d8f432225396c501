"""A worker consumer step that does something at start, then every few seconds until it stops."""

from __future__ import annotations

from typing import Any

from celery import bootsteps


class RepeatingStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs `tick(c)` when the consumer starts, then every `interval` seconds on its timer."""

    interval = 2.0

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.timer_entry: Any = None

    def tick(self, c: Any) -> None:
        raise NotImplementedError

    def start(self, c: Any) -> None:
        self.tick(c)
        self.timer_entry = c.timer.call_repeatedly(self.interval, self.tick, (c,))

    def stop(self, c: Any) -> None:
        if self.timer_entry is not None:
            c.timer.cancel(self.timer_entry)
            self.timer_entry = None

    shutdown = stop
