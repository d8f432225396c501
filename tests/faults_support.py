"""A cluster of its own for each fault test: its own Valkey, its own workers, short timeouts.

Faults (killed workers, a restarted broker) must not disturb the suite's shared `cluster`, so
each test that injects one starts a throwaway broker and worker(s) here and stops them all,
whatever happens. The workers import tests/usertasks_faults.py.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from conftest import free_port

from config import Settings, load_settings, settings_env
from producer import Pool
from producer.local.cluster import LocalCluster, child_pids
from producer.local.embedded import EmbeddedServer, ServerAddress
from tasks import create_app
from tasks.app import FarpoolCelery

FAULT_TASKS = ("usertasks", "usertasks_faults")
LOG_NAME = "local-cluster.log"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


@dataclass
class FaultCluster:
    """A broker this test owns and the workers it started on it."""

    settings: Settings
    app: FarpoolCelery
    server: EmbeddedServer
    workers: list[LocalCluster] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    @property
    def log(self) -> Path:
        """Where LocalCluster writes its workers' output (banner and log lines)."""
        return self.data_dir / LOG_NAME

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **settings_env(self.settings)}

    def start_worker(self) -> LocalCluster:
        """One more `celery -A tasks worker` (its own node name), back once it answers a ping."""
        worker = LocalCluster(self.settings, self.app)
        self.workers.append(worker)
        worker.start_worker()
        return worker

    @staticmethod
    def main_pid(worker: LocalCluster) -> int:
        return worker.worker.pid

    def pool_children(self, worker: LocalCluster) -> list[int]:
        return child_pids(self.main_pid(worker))

    def kill_worker(self, worker: LocalCluster) -> None:
        """SIGKILL the worker's whole process group: main process and prefork children at once."""
        worker.kill_worker()

    def pool(self, **options: Any) -> Pool:
        pool = Pool(app=self.app, **options)
        self.pools.append(pool)
        return pool

    def restart_broker(self) -> None:
        """Stop the broker (AOF flushed on a clean shutdown) and start it on the same port and data."""
        self.server.stop()
        self.server.start()

    def stop(self) -> None:
        if self.server.process is None:  # a test stopped the broker and failed before restarting it
            with contextlib.suppress(Exception):
                self.server.start()
        for pool in self.pools:
            with contextlib.suppress(Exception):
                pool.terminate()
        for worker in self.workers:
            worker.stop()
        self.server.stop()
        self.app.close()


def fault_settings(broker_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """conftest's cluster settings, with the fault tasks included and `overrides` applied."""
    values: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": broker_url,
        "queue": f"farpool-fault-{uuid.uuid4().hex[:8]}",
        "concurrency": 2,
        "embedded_broker": "never",
        "data_dir": str(data_dir),
        "include": FAULT_TASKS,
    }
    return load_settings(**{**values, **overrides})


@contextlib.contextmanager
def fault_cluster(
    tmp_path: Path, workers: int = 1, password: str | None = None, **overrides: Any
) -> Iterator[FaultCluster]:
    """A fresh broker and `workers` workers on it; everything stopped on exit."""
    port = free_port()
    server = EmbeddedServer(ServerAddress("127.0.0.1", port, password), tmp_path)
    server.start()
    try:
        settings = fault_settings(server.url, tmp_path, **overrides)
        cluster = FaultCluster(settings, create_app(settings), server)
    except BaseException:
        server.stop()
        raise
    try:
        for _ in range(workers):
            cluster.start_worker()
        yield cluster
    finally:
        cluster.stop()


class Background:
    """Run a blocking call (pool.map) in a daemon thread, to inject a fault while it runs."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._value = call()
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float) -> Any:
        if not self._done.wait(timeout):
            raise AssertionError(f"the call did not return within {timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self._value


class Unpickles:
    """Pickles to a call of os.mkdir(path): whoever unpickles it creates `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.path,))
