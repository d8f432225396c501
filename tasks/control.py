"""`farpool_info`: one remote-control reply with what the producer and `farpool cluster` need."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery.worker.control import inspect_command


def _memory() -> dict[str, int]:
    """Total and available memory in bytes, from /proc/meminfo (empty elsewhere)."""
    wanted = {"MemTotal": "total", "MemAvailable": "available"}
    found: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                name, _, rest = line.partition(":")
                if name in wanted:
                    found[wanted[name]] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return found


@inspect_command()
def farpool_info(state: Any) -> dict[str, Any]:
    """Pool type and size, consumed queues, and the host's cores, load and memory."""
    consumer = state.consumer
    pool_info = consumer.pool.info if consumer.pool is not None else {}
    task_consumer = consumer.task_consumer
    queues = [queue.name for queue in task_consumer.queues] if task_consumer else []
    return {
        "host": socket.gethostname(),
        "pool": str(pool_info.get("implementation", "?")).split(":")[0].rsplit(".", 1)[-1],
        "processes": int(pool_info.get("max-concurrency", 0)),
        "queues": queues,
        "cores": os.cpu_count() or 0,
        "load": list(os.getloadavg()),
        "memory": _memory(),
    }
