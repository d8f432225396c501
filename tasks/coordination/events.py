"""Event across the cluster, with multiprocessing's API: set, clear, is_set, wait(timeout).

The flag is a key; `set` also publishes on the event's channel, and `wait` blocks on that
channel (subscribed before it looks at the flag, so no set is missed).
"""

from __future__ import annotations

from typing import Any

import redis

from tasks.coordination.base import Deadline, Shared, reconnecting
from tasks.lua import script


class Event(Shared):
    kind = "event"

    def __init__(self, name: str, *, app: Any = None) -> None:
        super().__init__(name, app)

    def set(self) -> None:
        script("event_set")(self.client, [self.key(), self.key(":set")])

    def clear(self) -> None:
        self.client.delete(self.key())

    def is_set(self) -> bool:
        return bool(self.client.exists(self.key()))

    def wait(self, timeout: float | None = None) -> bool:
        """True once the event is set; False if `timeout` seconds pass first."""
        deadline = Deadline(timeout)
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.key(":set"))
                while not self.is_set():
                    if deadline.passed():
                        return False
                    pubsub.get_message(timeout=deadline.slice())
                return True
            except (redis.ConnectionError, redis.TimeoutError):
                if deadline.passed():
                    raise
                reconnecting(self.client.ping)  # the server is back: subscribe again, look again
            finally:
                pubsub.close()

    def __json__(self) -> dict[str, Any]:
        return {"name": self.name}
