"""Task events only while someone watches: Flower, `celery -A tasks events`, any event receiver.

Task events cost every call a message or two (about 0.6 ms of an `apply`). Nobody needs them
unless a monitor is open, so workers start with task events off and producers send no task-sent
events. A monitor of this app marks the cluster as watched: a key that lasts WATCH_LEASE
seconds, set when its event receiver starts (it wakes the workers with a `heartbeat`
broadcast) and renewed while it runs (by this app's receiver as events come in, and by
Flower's `enable_events` every 5 s); both go through FarpoolControl.
Marking also broadcasts `farpool_watch`, so workers turn task events on at once; each worker
reads the key every CHECK_INTERVAL and turns them off once it has expired. A producer reads it
at most every CHECK_INTERVAL, when it sends.

Task events that something else turned on (a worker started with `-E`, a monitor of another
app sending Celery's own `enable_events`) are left as they are.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.app.control import Control
from celery.app.events import Events
from celery.events.receiver import EventReceiver

from tasks.steps import RepeatingStep
from tasks.wire import WATCH_COMMAND, WATCH_KEY

WATCH_LEASE = 15  # seconds: three of Flower's enable_events intervals
MARK_EVERY = 5.0
CHECK_INTERVAL = 2.0
TASK_GROUP = "task"
logger = logging.getLogger(__name__)


def mark_watched(app: Any) -> None:
    """Someone watches this cluster: task events on, everywhere, for the next WATCH_LEASE s."""
    app.backend.client.set(WATCH_KEY, "1", ex=WATCH_LEASE)
    app.control.broadcast(WATCH_COMMAND)


def is_watched(app: Any) -> bool:
    return bool(app.backend.client.exists(WATCH_KEY))


def follow_watchers(consumer: Any, watched: bool) -> None:
    """Turn this worker's task events on or off, unless something else turned them on."""
    dispatcher = consumer.event_dispatcher
    if dispatcher is None or not dispatcher.groups:  # no dispatcher, or every event on (-E)
        return
    ours = getattr(consumer, "farpool_task_events", False)
    if watched and TASK_GROUP not in dispatcher.groups:
        dispatcher.groups.add(TASK_GROUP)
        consumer.farpool_task_events = True
        logger.info("Task events on: a monitor is watching.")
    elif not watched and ours:
        dispatcher.groups.discard(TASK_GROUP)
        consumer.farpool_task_events = False
        logger.info("Task events off: no monitor has watched for %d s.", WATCH_LEASE)
    consumer.app.conf.task_send_sent_event = TASK_GROUP in dispatcher.groups


class SentEvents:
    """A producer's task-sent events: on while the cluster is watched, checked when it sends."""

    def __init__(self) -> None:
        self._next_check = 0.0

    def follow(self, app: Any) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_INTERVAL
        try:
            app.conf.task_send_sent_event = is_watched(app)
        except Exception as error:  # the send that follows meets the same broker and says why
            logger.debug("could not tell whether the cluster is watched: %s", error)


class Watched(RepeatingStep):
    """The consumer step that follows the watch mark (tasks/consumer.py adds it)."""

    requires = ("celery.worker.consumer.events:Events",)
    interval = CHECK_INTERVAL

    def tick(self, c: Any) -> None:
        try:
            follow_watchers(c, is_watched(c.app))
        except Exception as error:  # the broker is away: the next check tries again
            logger.debug("could not read the watch mark: %s", error)


class WatchingReceiver(EventReceiver):  # type: ignore[misc]
    """Celery's event receiver, which marks the cluster watched while it receives."""

    _next_mark = 0.0

    def process(self, type: str, event: dict[str, Any]) -> None:
        if time.monotonic() >= self._next_mark:
            self._mark()
        super().process(type, event)

    def _mark(self) -> None:
        self._next_mark = time.monotonic() + MARK_EVERY
        try:
            mark_watched(self.app)
        except Exception as error:
            logger.warning("could not turn task events on: %s", error)


class FarpoolEvents(Events):  # type: ignore[misc]
    receiver_cls = f"{__name__}:WatchingReceiver"


class FarpoolControl(Control):  # type: ignore[misc]
    def broadcast(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Celery's; an event receiver starting (Flower, `celery events`) wakes the workers with a
        `heartbeat` broadcast: from then on, the cluster is watched."""
        if command == "heartbeat":
            mark_watched(self.app)
        return super().broadcast(command, *args, **kwargs)

    def enable_events(self, destination: Any = None, **kwargs: Any) -> Any:
        """What Flower calls every 5 s: the watch mark, renewed."""
        mark_watched(self.app)
