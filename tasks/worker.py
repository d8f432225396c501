"""`celery -A tasks worker` as a program: its banner, and what it checks before it starts.

FarpoolCelery.Worker makes it. Two changes to Celery's:

1. The banner says when task events are on. Celery's says `OFF (enable -E ...)` for a worker
   without -E, while farpool turns them on whenever a monitor watches (tasks/watch.py).
2. A worker started by hand on a loopback broker URL where nothing listens stops with one line
   saying what to run, exit 2, instead of retrying for ever. It does not start the bundled
   broker itself, as a pool and `farpool up` do: a broker started by one worker would stop with
   it, under every other worker and producer using it. On another host's URL, or once started,
   a worker retries as Celery does (a broker restarting comes back).
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import click
from celery.apps import worker as celery_worker

from config import is_loopback_url, mask_url

CELERY_EVENTS_OFF = "task events: OFF (enable -E to monitor tasks in this worker)"
FARPOOL_EVENTS = "task events: on while a monitor watches (Flower, celery events), off otherwise"
CONNECT_TIMEOUT = 1.0  # seconds: a loopback port answers or refuses at once


class Worker(celery_worker.Worker):  # type: ignore[misc]
    """Celery's worker program, with farpool's banner and its check for a local broker."""

    def on_before_init(self, quiet: bool = False, **kwargs: Any) -> None:
        url = self.app.settings.broker_url
        if nothing_listens_here(url):
            click.echo(
                f"farpool: no broker answers at {mask_url(url)}, on this machine: start one with "
                "`farpool up` (the bundled broker and a worker), or start Redis there; then start "
                "this worker again",
                err=True,
            )
            raise SystemExit(2)
        super().on_before_init(quiet=quiet, **kwargs)

    def startup_info(self, artlines: bool = True) -> str:
        return str(super().startup_info(artlines)).replace(CELERY_EVENTS_OFF, FARPOOL_EVENTS)


def nothing_listens_here(url: str) -> bool:
    """True if `url` is a redis:// address of this machine whose port refuses connections."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if parts.scheme not in ("redis", "rediss") or not is_loopback_url(url):
        return False
    try:
        socket.create_connection((host, parts.port or 6379), timeout=CONNECT_TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # anything else (a timeout): let Celery's own connection say what it is
        return False
    return False
