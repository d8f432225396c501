"""Small helpers shared by the tests: running the CLI and reading keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

import redis

FARPOOL = [sys.executable, "-m", "producer"]


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 90, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`farpool ARGS` as a user runs it; output captured as text."""
    return subprocess.run(
        [*FARPOOL, *args],
        env=dict(env if env is not None else os.environ),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def result_keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(match=b"celery-task*-meta-*", count=1000))
