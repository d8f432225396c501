"""The worker's consumer, with a heartbeat that finds a lost broker instead of waiting for it.

Celery sends each worker heartbeat with `retry=True` and no retry policy, so kombu retries it
for ever: a worker whose host is cut off from the broker spends its main loop in that retry,
never notices that the connection is gone, and runs nothing else until the cable is back.
farpool's heartbeat is sent once. One that cannot go out (a socket timeout, a refused
connection) raises its connection error in the consumer's loop, which Celery handles as a lost
broker: "Connection to broker lost" in the log, then reconnection attempts until it is back.
The online and offline events are sent once too, and buffered when they cannot go out.
It also announces the worker to producers (tasks/presence.py) and sends task events only
while a monitor watches (tasks/watch.py). Selected by Celery's
`worker_consumer` setting (config/celeryconfig.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery.worker import heartbeat
from celery.worker.consumer import Consumer as CeleryConsumer
from celery.worker.consumer import heart

CELERY_HEART = "celery.worker.consumer.heart:Heart"


class Heartbeat(heartbeat.Heart):
    def _send(self, event: str, retry: bool = True) -> Any:
        eventer = self.eventer
        buffering = eventer.buffer_while_offline
        eventer.buffer_while_offline = buffering and event != "worker-heartbeat"
        try:
            return super()._send(event, retry=False)
        finally:
            eventer.buffer_while_offline = buffering


class Heart(heart.Heart):  # type: ignore[misc]
    """The bootstep that starts farpool's heartbeat in place of Celery's."""

    def start(self, c: Any) -> None:
        c.heart = Heartbeat(c.timer, c.event_dispatcher, self.heartbeat_interval)
        c.heart.start()


class Consumer(CeleryConsumer):  # type: ignore[misc]
    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps: ClassVar[list[str]] = [
            *(
                f"{__name__}:Heart" if step == CELERY_HEART else step
                for step in CeleryConsumer.Blueprint.default_steps
            ),
            "tasks.presence:Presence",
            "tasks.watch:Watched",
        ]
