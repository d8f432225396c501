"""A pool that finds no worker: starts its own local one, or says how to start one."""

from __future__ import annotations

import logging

from config import Settings, mask_url
from producer.errors import NoWorkersError
from producer.local.cluster import LocalCluster, WorkerInfo
from producer.local.embedded import server_address

logger = logging.getLogger("farpool")
HOW_TO_START_A_WORKER = "start one with `celery -A tasks worker` (or `farpool up`)"


def start_local_worker(local: LocalCluster, settings: Settings, allowed: bool) -> None:
    """A worker for this pool's lifetime, when the broker is on this machine and that is allowed
    (`start_local`, FARPOOL_EMBEDDED_BROKER=auto); NoWorkersError saying what to run otherwise."""
    url = settings.broker_url
    address = server_address(url)
    loopback = address is not None and address.is_loopback
    if not (allowed and loopback and settings.embedded_broker == "auto"):
        raise NoWorkersError(
            f"no worker consumes queue {settings.queue!r} at {mask_url(url)}: {HOW_TO_START_A_WORKER}"
        )
    broker = "embedded broker + " if local.started_broker else ""
    logger.info(
        "no worker online at %s; starting a local cluster (%s1 worker × %d processes) for this pool",
        mask_url(url),
        broker,
        settings.concurrency,
    )
    local.start_worker()


def serve_this_pool(
    local: LocalCluster, settings: Settings, workers: list[WorkerInfo], allowed: bool
) -> None:
    """With workers online, ask the local ones to call this script (producer/local/script_access.py);
    with none, start a local worker for this pool (which lists the script itself) if allowed."""
    if workers:
        local.request_script_access()
    else:
        start_local_worker(local, settings, allowed)
