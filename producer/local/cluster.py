"""A local cluster (embedded broker + a real `celery -A tasks worker` [+ Flower]) and inspection."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil
from celery import Celery
from kombu.exceptions import ChannelError

from config import Settings, mask_url, settings_env
from producer.errors import NoWorkersError
from producer.local.children import STOP_GRACE, ChildProcess
from producer.local.embedded import EmbeddedServer, ensure_servers
from producer.local.readiness import stop_quickly, wait_announced, wait_answering
from producer.local.running import UP, remove_record, write_record
from producer.local.script_access import request_script, withdraw_request
from producer.packages import FARPOOL_ROOT
from producer.sending.references import MainScript
from tasks.presence import live_workers
from tasks.wire import INFO_COMMAND, WorkerDescription

INSPECT_TIMEOUT = 1.0
logger = logging.getLogger("farpool")
WORKER_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class WorkerInfo:
    """One online worker, as its `farpool_info` reply (tasks/control.py) describes it."""

    name: str
    host: str
    pool: str
    processes: int
    queues: tuple[str, ...]
    running: tuple[str, ...]  # the function each busy process runs
    tasks: tuple[str, ...]  # the tasks it has registered
    allowlist: tuple[str, ...]  # the modules whose plain functions it calls
    cores: int  # logical CPUs (hardware threads)
    load: tuple[float, ...]
    memory_total: int | None
    memory_available: int | None
    physical_cores: int  # 0: the worker did not say (an older farpool)
    cpu_model: str
    caches: dict[str, int]  # bytes by name: L1d, L1i, L2, L3 (the caches one CPU sees)

    @property
    def oversubscribed(self) -> bool:
        """More processes than physical cores: CPU-bound tasks share cores, hardware threads at best."""
        return 0 < self.physical_cores < self.processes


def _worker_info(name: str, reply: WorkerDescription) -> WorkerInfo:
    memory = cast(dict[str, Any], reply.get("memory", {}))
    return WorkerInfo(
        name=name,
        host=str(reply.get("host", name.split("@", 1)[-1])),
        pool=str(reply.get("pool", "?")),
        processes=int(reply.get("processes", 0)),
        queues=tuple(reply.get("queues", ())),
        running=tuple(reply.get("running", ())),
        tasks=tuple(reply.get("tasks", ())),
        allowlist=tuple(reply.get("allowlist", ())),
        cores=int(reply.get("cores", 0)),
        load=tuple(reply.get("load", ())),
        memory_total=memory.get("total"),
        memory_available=memory.get("available"),
        physical_cores=int(reply.get("physical_cores", 0)),
        cpu_model=str(reply.get("cpu_model", "")),
        caches={str(name): int(size) for name, size in dict(reply.get("caches", {})).items()},
    )


def ask_workers(app: Celery, command: str, timeout: float) -> list[dict[str, Any]]:
    """The replies to a remote-control command, collected on a connection of its own.

    A pooled kombu connection stops receiving replies once this process has forked (a
    fork-context multiprocessing.Pool, say): the child's after-fork cleanup removes the
    connection's sockets from the epoll set it shares with the parent.
    """
    with app.connection_for_write() as connection:
        replies = app.control.broadcast(command, reply=True, timeout=timeout, connection=connection)
    return list(replies or [])


def _ask_workers(app: Celery, timeout: float) -> list[WorkerInfo]:
    replies = ask_workers(app, INFO_COMMAND, timeout)
    return sorted(
        (_worker_info(name, answer) for reply in replies for name, answer in reply.items()),
        key=lambda worker: worker.name,
    )


def announced_workers(app: Celery, queue: str) -> list[WorkerInfo]:
    """The workers announced on `queue` (tasks/presence.py): one round trip, no broadcast.

    Each description is at most ANNOUNCE_INTERVAL (2 s) old; a worker that died stays listed
    until its announcement expires (ANNOUNCE_TTL, 10 s). `online_workers` asks them now.
    Sorted by name: `farpool tasks` and `farpool cluster` list them in the same order each time
    (the announcements come in the order they expire).
    """
    client = cast(Any, app.backend).client
    found = sorted(live_workers(client, queue), key=lambda worker: str(worker["name"]))
    return [_worker_info(str(worker["name"]), worker) for worker in found]


def online_workers(
    app: Celery, timeout: float = INSPECT_TIMEOUT, queue: str | None = None
) -> list[WorkerInfo]:
    """The workers consuming `queue` (all workers if None) that answer within `timeout` s.

    A worker's first reply can come late (it is busy, or just started): when none answers,
    ask once more with twice the patience before concluding there is none.
    """
    workers = _ask_workers(app, timeout) or _ask_workers(app, 2 * timeout)
    return [worker for worker in workers if queue is None or queue in worker.queues]


CELERY_WORKER = ("-m", "celery", "-A", "tasks", "worker")
# The same worker without Celery's other subcommands and plugins: 0.3 s sooner (tasks/local_worker.py)
LOCAL_WORKER = ("-m", "tasks.local_worker", "worker")


def worker_command(
    settings: Settings,
    node_name: str,
    loglevel: str = "INFO",
    mingle: bool = True,
    program: tuple[str, ...] = CELERY_WORKER,
) -> list[str]:
    """The command a user runs on each host, as an argument list; without mingle (the revoked
    ids other workers hold, asked for at start with a 1 s wait) for a pool's own worker."""
    return [
        sys.executable,
        *program,
        "--loglevel",
        loglevel,
        "--hostname",
        node_name,
        "--concurrency",
        str(settings.concurrency),
        *([] if mingle else ["--without-mingle"]),
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
    """Broker (if none answers), one prefork worker and optionally Flower, on this machine.

    Every process is a ChildProcess: it ends with this one, even on SIGKILL.
    """

    def __init__(
        self,
        settings: Settings,
        app: Celery,
        *,
        flower: bool = False,
        quiet: bool = True,
        script: MainScript | None = None,
        owner: str = "a pool",
    ) -> None:
        self.settings = settings
        self.owner = owner
        self.script = script
        self.app = app
        self.flower = flower
        self.record_key = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.node_name = f"farpool-local-{self.record_key}@%h"
        self.servers: list[EmbeddedServer] = []
        self.children: list[ChildProcess] = []
        self._quiet = quiet

    @property
    def log(self) -> Path:
        return Path(self.settings.data_dir) / "local-cluster.log"

    def worker_settings(self) -> Settings:
        """The settings plus what this process can import: the worker imports it all the same.

        Its import path gains this process's working folder and the script's folder (after the
        user's FARPOOL_IMPORT_PATH, in FARPOOL_LOCAL_IMPORT_PATH: a refusal's hint repeats only
        the user's); its allowlist gains the script and the modules the script imported from its
        folder, which the worker imports when a call first needs them.
        """
        folders = [os.getcwd()]
        allow = list(self.settings.allow)
        if self.script is not None:
            folders.append(self.script.folder)
            allow += [self.script.module, *modules_from(self.script.folder)]
        return self.settings.model_copy(
            update={
                "allow": tuple(dict.fromkeys(allow)),
                "local_import_path": tuple(dict.fromkeys(folders)),
                "data_dir": str(Path(self.settings.data_dir).resolve()),
                "script_requests": True,  # the scripts of pools started later (script_access.py)
            }
        )

    def request_script_access(self) -> None:
        """Ask the local workers already running (`farpool up`'s) to call this process's script."""
        if self.script is None:
            return
        try:
            request_script(self.settings, self.record_key, self.script, modules_from(self.script.folder))
        except OSError as error:  # a data folder not ours to write: the workers' allowlists decide
            logger.warning("could not ask the local workers to call this script: %s", error)

    def _spawn(self, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> ChildProcess:
        env = {**os.environ, **settings_env(self.worker_settings()), **(extra_env or {})}
        # In farpool's own folder, so that `-A tasks` is farpool's even when the user's folder
        # has a tasks.py of its own.
        options: dict[str, Any] = {"env": env, "cwd": FARPOOL_ROOT}
        if self._quiet:
            child = ChildProcess(name, command, log=self.log, **options)
        else:
            child = ChildProcess(name, command, forward_to=sys.stderr, **options)
        self.children.append(child.start())
        self._record()
        return child

    def _record(self) -> None:
        """What this cluster runs, for `farpool down` (producer/local/running.py)."""
        servers = [server.child for server in self.servers if server.child is not None]
        write_record(self.settings.data_dir, self.record_key, self.owner, [*servers, *self.children])

    @property
    def started_broker(self) -> bool:
        return bool(self.servers)

    def start_broker(self, persistent: bool = True) -> None:
        """Start the bundled server for the configured loopback URLs that do not answer."""
        self.servers += ensure_servers(self.settings, persistent)
        if self.servers:
            self._record()

    def start_worker(self) -> None:
        """Start `celery -A tasks worker` (and Flower if asked) and wait until it answers."""
        try:
            # Logged in the background: warnings and errors only (INFO is two lines per task).
            loglevel = "WARNING" if self._quiet else "INFO"
            # A pool's own worker is the only one its pool's revokes concern: no mingle.
            mingle = self.owner == UP
            command = worker_command(self.settings, self.node_name, loglevel, mingle, LOCAL_WORKER)
            worker = self._spawn("the local worker", command)
            self._wait_for_worker(worker)
            if self.flower:  # once the worker answers: Flower's first look at it then succeeds
                self._wait_for_worker(worker, answering=True)
                self._spawn("Flower", flower_command(self.settings), flower_env(self.settings))
        except BaseException:
            self.stop()
            raise

    @property
    def worker(self) -> ChildProcess:
        return self.children[0]

    def start(self, persistent: bool = True) -> LocalCluster:
        self.start_broker(persistent)
        self.start_worker()
        return self

    def _wait_for_worker(self, worker: ChildProcess, answering: bool = False) -> None:
        """Until `worker` is announced, or also answers remote control (`answering`)."""
        node = self.node_name.replace("%h", "")
        wait = wait_answering if answering else wait_announced
        if not wait(self.app, self.settings.queue, node, worker, WORKER_START_TIMEOUT):
            raise NoWorkersError(
                f"the local worker did not come online within {WORKER_START_TIMEOUT:.0f} s "
                f"on {mask_url(self.settings.broker_url)}"
            )

    def exited(self) -> ChildProcess | None:
        """The first of this cluster's processes that has ended by itself, if any."""
        return next((child for child in self.children if not child.running()), None)

    def kill_worker(self) -> None:
        """SIGKILL the worker and its prefork children at once."""
        self.worker.kill()

    def stop(self, quick: bool = False, detached: bool = False) -> None:
        """Warm shutdown (running chunks finish), then anything still alive is killed; `quick`:
        a pool done with its own worker kills it once it has withdrawn (producer/local/readiness.py);
        `detached`: its work may still run, so its script request lasts as long as its results."""
        recorded = bool(self.servers or self.children)
        for child in reversed(self.children):
            if quick and child is self.children[0]:
                stop_quickly(self.app, self.settings.queue, self.node_name.replace("%h", ""), child)
            child.stop(STOP_GRACE)
        self.children = []
        for server in reversed(self.servers):
            server.stop()
        if self.servers:
            forget = getattr(self.app.backend, "forget_subscriptions", None)
            if forget is not None:
                forget()
        self.servers = []
        if recorded:
            remove_record(self.settings.data_dir, self.record_key)
        withdraw_request(self.settings, self.record_key, self.settings.result_expires if detached else 0.0)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def modules_from(folder: str) -> list[str]:
    """The modules this process imported from `folder` (a script's helpers), farpool's aside."""
    root = Path(folder)
    found = []
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        file = getattr(module, "__file__", None)
        if name == "__main__" or top in ("tasks", "producer", "config") or not file:
            continue
        path = Path(file)
        if path.parent == root or (root in path.parents and (root / top).is_dir()):
            found.append(name)
    return sorted(found)


def queue_depth(app: Celery, queue: str) -> int:
    """Messages waiting in `queue` on the broker (Redis keeps no empty queue: 0 then)."""
    with app.connection_for_read() as connection:
        try:
            channel: Any = connection.default_channel  # a kombu virtual channel
            return int(channel.queue_declare(queue, passive=True).message_count)
        except ChannelError:
            return 0


def _children(pid: int, recursive: bool) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=recursive)]
    except psutil.Error:  # gone, or not ours to see
        return []


def child_pids(pid: int) -> list[int]:
    """The direct children of process `pid` (psutil); [] once it is gone."""
    return _children(pid, recursive=False)


def descendant_pids(pid: int) -> list[int]:
    """Every process below `pid`: a worker's prefork children, a cluster's servers."""
    return _children(pid, recursive=True)
