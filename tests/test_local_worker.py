"""A local cluster's worker command (tasks/local_worker.py): Celery's own worker, without the
subcommands and plugins `celery` imports first (Flower's, the amqp shell's)."""

from __future__ import annotations

import subprocess
import sys

from producer.local.cluster import CELERY_WORKER, LOCAL_WORKER
from producer.packages import FARPOOL_ROOT


def imported_by(program: tuple[str, ...]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *program, "--help"],
        cwd=FARPOOL_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--concurrency" in done.stdout and "--without-mingle" in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


def test_the_local_worker_takes_celerys_worker_options_without_its_plugins() -> None:
    def plugins(modules: set[str]) -> set[str]:
        return {name.partition(".")[0] for name in modules} & {"flower", "click_repl"}

    assert plugins(imported_by(CELERY_WORKER)) == {"flower", "click_repl"}
    assert plugins(imported_by(LOCAL_WORKER)) == set()
