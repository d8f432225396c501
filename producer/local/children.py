"""One home for the processes farpool starts on this machine: the broker, a worker, Flower.

Each child runs in a session of its own, with no inherited stdout or stderr (its output goes
to a log file, or through a pipe that this process copies), and, on Linux, with a parent-death
signal: it ends with the process that started it, even one killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

from producer.errors import FarpoolError

STOP_GRACE = 20.0
TAIL_LINES = 5
PR_SET_PDEATHSIG = 1


def stop_process_group(process: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL for its whole process group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    kill_process_group(process)


def kill_process_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and everything in its process group at once, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait()


class _Spawner:
    """Starts children from one thread that lives as long as the process.

    Linux sends the parent-death signal when the *thread* that forked the child ends, so a
    child started from a short-lived thread (a user's executor) would die with that thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def run(self, start: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="farpool-spawner", daemon=True)
                self._thread.start()
        done: Future[Any] = Future()
        self._requests.put((start, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            start, done = self._requests.get()
            try:
                done.set_result(start())
            except BaseException as error:
                done.set_exception(error)


_spawner = _Spawner()


def _die_with_parent(signum: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return in_child


class ChildProcess:
    """A command run in the background for as long as this process wants it (or lives)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        forward_to: IO[str] | None = None,
        death_signal: int = signal.SIGKILL,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = dict(env) if env is not None else None
        self.log = log
        self.forward_to = forward_to
        self.death_signal = death_signal
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._recent: deque[str] = deque(maxlen=TAIL_LINES)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ChildProcess:
        output: Any = subprocess.DEVNULL
        if self.forward_to is not None:
            output = subprocess.PIPE
        elif self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            output = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed below
        preexec = _die_with_parent(self.death_signal)

        def popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )

        try:
            self.process = _spawner.run(popen)
        finally:
            if output not in (subprocess.DEVNULL, subprocess.PIPE):
                output.close()
        if self.forward_to is not None:
            threading.Thread(target=self._forward, name=f"farpool-{self.name}-output", daemon=True).start()
        return self

    def _forward(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self._recent.append(line.rstrip("\n"))
            with contextlib.suppress(ValueError, OSError):
                self.forward_to.write(line)  # type: ignore[union-attr]
                self.forward_to.flush()  # type: ignore[union-attr]

    def tail(self) -> str:
        """The last lines this child wrote, for an error message."""
        if self.log is not None and self.forward_to is None:
            with contextlib.suppress(OSError), self.log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
                lines = log.read().decode(errors="replace").splitlines()[-TAIL_LINES:]
                return "\n".join(lines)
        return "\n".join(self._recent)

    def exited_error(self) -> FarpoolError:
        assert self.process is not None
        where = f" (log: {self.log})" if self.log is not None else ""
        tail = self.tail()
        last = f"; its last lines:\n{tail}" if tail else ""
        return FarpoolError(f"{self.name} exited with code {self.process.returncode}{where}{last}")

    def wait_ready(self, ready: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        """Poll `ready` until it is true (True), the child exits (FarpoolError) or time runs out (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return True
            if not self.running():
                raise self.exited_error()
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM (a worker finishes its running chunks), then SIGKILL after `grace` seconds."""
        if self.process is not None:
            stop_process_group(self.process, grace)

    def kill(self) -> None:
        """SIGKILL the child and its own children at once (a host losing power)."""
        if self.process is not None:
            kill_process_group(self.process)
