"""A local cluster (embedded broker + a real `celery -A tasks worker` [+ Flower]) and inspection."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from celery import Celery

from config import Settings, mask_url, settings_env
from producer.embedded import EmbeddedServer, ensure_servers
from producer.errors import FarpoolError, NoWorkersError

INSPECT_TIMEOUT = 1.0
WORKER_START_TIMEOUT = 60.0
STOP_GRACE = 20.0


@dataclass(frozen=True)
class WorkerInfo:
    """One online worker, as its `stats` reply describes it."""

    name: str
    pool: str
    processes: int
    stats: dict[str, Any]

    @property
    def host(self) -> str:
        return self.name.split("@", 1)[-1]


def online_workers(app: Celery, timeout: float = INSPECT_TIMEOUT) -> list[WorkerInfo]:
    """The workers that answer a `stats` broadcast within `timeout` seconds.

    A worker's first reply can come late (it is busy, or just started): when none answers,
    ask once more with twice the patience before concluding there is none.
    """
    replies = (
        app.control.inspect(timeout=timeout).stats() or app.control.inspect(timeout=2 * timeout).stats() or {}
    )
    workers = []
    for name, stats in sorted(replies.items()):
        pool = stats.get("pool", {})
        implementation = str(pool.get("implementation", "?")).split(":")[0]
        processes = int(pool.get("max-concurrency", len(pool.get("processes", [])) or 1))
        workers.append(WorkerInfo(name, implementation.rsplit(".", 1)[-1], processes, stats))
    return workers


def worker_command(settings: Settings, node_name: str, loglevel: str = "INFO") -> list[str]:
    """The command a user runs on each host, as an argument list."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "worker",
        "--loglevel",
        loglevel,
        "--hostname",
        node_name,
        "--concurrency",
        str(settings.concurrency),
    ]


def flower_command(settings: Settings) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
    ]
    if settings.flower_basic_auth:
        command.append(f"--basic-auth={settings.flower_basic_auth}")
    return command


class LocalCluster:
    """Broker (if none answers), one prefork worker and optionally Flower, on this machine."""

    def __init__(
        self,
        settings: Settings,
        app: Celery,
        *,
        flower: bool = False,
        log: IO[str] | None = None,
        quiet: bool = True,
    ) -> None:
        self.settings = settings
        self.app = app
        self.flower = flower
        self.node_name = f"farpool-local-{os.getpid()}-{uuid.uuid4().hex[:6]}@%h"
        self.servers: list[EmbeddedServer] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._quiet = quiet
        self._log = log

    def _spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_env(self.settings)}
        output: Any = None
        if self._quiet:
            log_dir = Path(self.settings.data_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
            output = open(log_dir / "local-cluster.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        if output is not None:
            output.close()
        self.processes.append(process)
        return process

    @property
    def started_broker(self) -> bool:
        return bool(self.servers)

    def start_broker(self) -> None:
        """Start the bundled server for the configured loopback URLs that do not answer."""
        self.servers = ensure_servers(self.settings)

    def start_worker(self) -> None:
        """Start `celery -A tasks worker` (and Flower if asked) and wait until it answers."""
        try:
            worker = self._spawn(worker_command(self.settings, self.node_name))
            if self.flower:
                self._spawn(flower_command(self.settings))
            self._wait_for_worker(worker)
        except BaseException:
            self.stop()
            raise

    def start(self) -> LocalCluster:
        self.start_broker()
        self.start_worker()
        return self

    def _wait_for_worker(self, worker: subprocess.Popen[bytes]) -> None:
        expected = self.node_name.replace("%h", "")
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise FarpoolError(
                    f"the local worker exited with code {worker.returncode} at start "
                    f"(see {Path(self.settings.data_dir) / 'local-cluster.log'})"
                )
            replies = self.app.control.ping(timeout=0.5) or []
            if any(expected in name for reply in replies for name in reply):
                return
        raise NoWorkersError(
            f"the local worker did not come online within {WORKER_START_TIMEOUT:.0f} s "
            f"on {mask_url(self.settings.broker_url)}"
        )

    def stop(self) -> None:
        """Warm shutdown (running chunks finish), then anything still alive is killed."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _kill_group(process)
        self.processes = []
        for server in reversed(self.servers):
            server.stop()
        self.servers = []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait()
