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
from kombu.exceptions import ChannelError

from config import Settings, mask_url, settings_env
from producer.embedded import EmbeddedServer, ensure_servers
from producer.errors import FarpoolError, NoWorkersError

INSPECT_TIMEOUT = 1.0
WORKER_START_TIMEOUT = 60.0
STOP_GRACE = 20.0


@dataclass(frozen=True)
class WorkerInfo:
    """One online worker, as its `farpool_info` reply (tasks/control.py) describes it."""

    name: str
    host: str
    pool: str
    processes: int
    queues: tuple[str, ...]
    cores: int
    load: tuple[float, ...]
    memory_total: int | None
    memory_available: int | None


def _worker_info(name: str, reply: dict[str, Any]) -> WorkerInfo:
    memory = reply.get("memory", {})
    return WorkerInfo(
        name=name,
        host=str(reply.get("host", name.split("@", 1)[-1])),
        pool=str(reply.get("pool", "?")),
        processes=int(reply.get("processes", 0)),
        queues=tuple(reply.get("queues", ())),
        cores=int(reply.get("cores", 0)),
        load=tuple(reply.get("load", ())),
        memory_total=memory.get("total"),
        memory_available=memory.get("available"),
    )


def _ask_workers(app: Celery, timeout: float) -> list[WorkerInfo]:
    replies = app.control.broadcast("farpool_info", reply=True, timeout=timeout) or []
    return sorted(
        (_worker_info(name, answer) for reply in replies for name, answer in reply.items()),
        key=lambda worker: worker.name,
    )


def online_workers(
    app: Celery, timeout: float = INSPECT_TIMEOUT, queue: str | None = None
) -> list[WorkerInfo]:
    """The workers consuming `queue` (all workers if None) that answer within `timeout` s.

    A worker's first reply can come late (it is busy, or just started): when none answers,
    ask once more with twice the patience before concluding there is none.
    """
    workers = _ask_workers(app, timeout) or _ask_workers(app, 2 * timeout)
    return [worker for worker in workers if queue is None or queue in worker.queues]


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


FLOWER_TASK_COLUMNS = "name,args,state,received,runtime,worker"


def flower_command(settings: Settings) -> list[str]:
    """`celery -A tasks flower` with the args column (farpool's chunk labels) shown."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
        f"--tasks-columns={FLOWER_TASK_COLUMNS}",
    ]


def flower_env(settings: Settings) -> dict[str, str]:
    """Flower's basic auth, passed in its environment where `ps` cannot show it."""
    return {"FLOWER_BASIC_AUTH": settings.flower_basic_auth} if settings.flower_basic_auth else {}


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

    def _spawn(self, command: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_env(self.settings), **(extra_env or {})}
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
        self.servers += ensure_servers(self.settings)

    def start_worker(self) -> None:
        """Start `celery -A tasks worker` (and Flower if asked) and wait until it answers."""
        try:
            # Logged in the background: warnings and errors only (INFO is two lines per task).
            loglevel = "WARNING" if self._quiet else "INFO"
            worker = self._spawn(worker_command(self.settings, self.node_name, loglevel))
            if self.flower:
                self._spawn(flower_command(self.settings), flower_env(self.settings))
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


def queue_depth(app: Celery, queue: str) -> int:
    """Messages waiting in `queue` on the broker (Redis keeps no empty queue: 0 then)."""
    with app.connection_for_read() as connection:
        try:
            return int(connection.default_channel.queue_declare(queue, passive=True).message_count)
        except ChannelError:
            return 0


def child_pids(pid: int) -> list[int]:
    """The direct children of process `pid`, from /proc (Linux); [] once it is gone."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def descendant_pids(pid: int) -> list[int]:
    """Every process below `pid`: a worker's prefork children, a cluster's servers."""
    return [pid for child in child_pids(pid) for pid in (child, *descendant_pids(child))]
