"""farpool's remote-control commands (their names: tasks/wire.py): INFO_COMMAND (what the producer
and `farpool cluster` need to know of a worker), REVOKE_COMMAND and WATCH_COMMAND."""

from __future__ import annotations

from typing import Any

from celery.platforms import signals
from celery.utils.functional import maybe_list
from celery.worker import state as worker_state
from celery.worker.control import control_command, inspect_command, ok

from tasks.presence import describe
from tasks.watch import follow_watchers
from tasks.wire import INFO_COMMAND, REVOKE_COMMAND, WATCH_COMMAND


@inspect_command(name=INFO_COMMAND)
def farpool_info(state: Any) -> dict[str, Any]:
    """What this worker announces (tasks/presence.py), asked now: for `online_workers`."""
    return describe(state.consumer)


@control_command(
    name=REVOKE_COMMAND,
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


@control_command(name=WATCH_COMMAND)
def farpool_watch(state: Any, **kwargs: Any) -> dict[str, str]:
    """A monitor opened: task events on now (tasks/watch.py turns them off when nobody watches)."""
    follow_watchers(state.consumer, True)
    return ok("watched")
