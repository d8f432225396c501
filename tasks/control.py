"""farpool's remote-control commands: `farpool_info` (what the producer and `farpool cluster`
need to know of a worker) and `farpool_revoke`."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery.platforms import signals
from celery.utils.functional import maybe_list
from celery.worker import state as worker_state
from celery.worker.control import control_command, inspect_command, ok

from tasks.contract import is_internal
from tasks.watch import follow_watchers


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


def running_function(name: str, label: str) -> str:
    """The function a running request calls: from farpool's label (`square × 3 items [chunk
    1/5]`, `square(…)`) for its executors, the task's own name otherwise."""
    if is_internal(name) and label:
        return label.split(" × ", 1)[0].removesuffix("(…)")
    return name


@inspect_command()
def farpool_info(state: Any) -> dict[str, Any]:
    """Pool type and size, consumed queues, what runs now, and the host's cores, load and memory."""
    consumer = state.consumer
    pool_info = consumer.pool.info if consumer.pool is not None else {}
    task_consumer = consumer.task_consumer
    queues = [queue.name for queue in task_consumer.queues] if task_consumer else []
    return {
        "host": socket.gethostname(),
        "pool": str(pool_info.get("implementation", "?")).split(":")[0].rsplit(".", 1)[-1],
        "processes": int(pool_info.get("max-concurrency", 0)),
        "queues": queues,
        "tasks": sorted(name for name in state.consumer.app.tasks if not is_internal(name)),
        "allowlist": list(getattr(state.consumer.app, "allowlist", ())),
        "running": [
            running_function(request.name, request.argsrepr) for request in list(worker_state.active_requests)
        ],
        "cores": os.cpu_count() or 0,
        "load": list(os.getloadavg()),
        "memory": _memory(),
    }


@control_command(
    variadic="task_id",
    args=[("terminate", bool)],
    signature="[id1 [id2 [... [idN]]]]",
)
def farpool_revoke(state: Any, task_id: Any, terminate: bool = False, **kwargs: Any) -> dict[str, str]:
    """Celery's revoke, without the REVOKED result it stores for each task not yet started.

    farpool revokes only work whose results it discards (tasks/backend.py): the worker skips
    the revoked messages it meets, and with `terminate` stops the ones it runs (SIGTERM).
    """
    task_ids = set(maybe_list(task_id) or [])
    worker_state.revoked.update(task_ids)
    terminated = []
    if terminate:
        for revoked_id in task_ids:
            request = worker_state.requests.get(revoked_id)
            if request is not None and request in worker_state.active_requests:
                request.terminate(state.consumer.pool, signal=signals.signum("TERM"))
                terminated.append(revoked_id)
    return ok(f"{len(task_ids)} revoked, {len(terminated)} terminated")


@control_command()
def farpool_watch(state: Any, **kwargs: Any) -> dict[str, str]:
    """A monitor opened: task events on now (tasks/watch.py turns them off when nobody watches)."""
    follow_watchers(state.consumer, True)
    return ok("watched")
