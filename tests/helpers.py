"""Small helpers shared by the tests: running the CLI and reading keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis

from producer.local.children import stop_process_group
from producer.local.embedded import free_port

__all__ = ["free_port"]  # conftest and the tests take it from here

# The console script pip installed beside this interpreter: the `farpool` a user runs.
FARPOOL = [os.path.join(os.path.dirname(sys.executable), "farpool")]
CATCH_UP_TIMEOUT = 30.0
T = TypeVar("T")


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
    input: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`farpool ARGS` as a user runs it (in folder `cwd`); output captured as text."""
    return subprocess.run(
        [*FARPOOL, *args],
        env=dict(env if env is not None else os.environ),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def result_keys(client: redis.Redis) -> set[bytes]:
    """Result keys in the backend, less Celery's chord-done markers (`….c`): those stop a
    redelivered chunk from firing a chord's callback twice, and expire by themselves."""
    keys = client.scan_iter(match=b"celery-task*-meta-*", count=1000)
    return {key for key in keys if not key.endswith(b".c")}


def stored(app: Any, task_id: str) -> bool:
    """True once the task's result (or its refusal) is in the result backend."""
    return bool(app.backend.client.exists(app.backend.get_key_for_task(task_id)))


def poll(condition: Callable[[], T | None], what: str, timeout: float = CATCH_UP_TIMEOUT) -> T:
    """condition()'s first truthy value, polled every 0.2 s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r:.500})")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL for its whole process group: nothing is left running."""
    stop_process_group(process, grace)


def fresh_machine_env(data_dir: str, concurrency: int = 1, **extra: str) -> dict[str, str]:
    """A user's environment with nothing on the broker port: the bundled server must start."""
    env = {
        **os.environ,
        "FARPOOL_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "FARPOOL_EMBEDDED_BROKER": "auto",
        "FARPOOL_DATA_DIR": data_dir,
        "FARPOOL_CONCURRENCY": str(concurrency),
        **extra,
    }
    env.pop("FARPOOL_RESULT_BACKEND", None)
    return env
