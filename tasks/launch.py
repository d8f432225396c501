"""How tasks.programs.run starts, feeds, reads and stops a program on a worker.

Apart from tasks/programs.py on purpose: every plain function defined in a built-in module can
be called by reference (tasks/references.py), and `run` alone should be.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from celery import current_app

from tasks.references import RefusedTask

OUTPUT_CAP = 2**20  # bytes kept per stream (stdout, stderr): 1 MiB; the rest is read and dropped
READ_SIZE = 2**16
SETTING = "FARPOOL_PROGRAMS"


def listed_programs() -> tuple[str, ...]:
    """The worker's FARPOOL_PROGRAMS: its app's settings (inside a task, the worker's app)."""
    settings = getattr(current_app, "settings", None)
    if settings is None:  # not a farpool app: read the settings themselves
        from config import load_settings

        settings = load_settings()
    return tuple(settings.programs)


def _refused(name: str, why: str, listed: Sequence[str]) -> RefusedTask:
    shown = ", ".join(listed) or "nothing (empty by default)"
    fix = f"; to allow it, set {SETTING}={','.join([*listed, name])} on the worker" if name else ""
    return RefusedTask(f"program {name!r} refused: {why} (allowed on this worker by {SETTING}: {shown}){fix}")


def _found(entry: str) -> str | None:
    """The absolute path of a listed program: as listed if absolute, else on the worker's PATH."""
    if os.path.isabs(entry):
        return entry if os.path.isfile(entry) and os.access(entry, os.X_OK) else None
    if os.sep in entry:  # a relative path would depend on the working directory
        return None
    return shutil.which(entry)


def program_path(name: str, listed: Sequence[str]) -> str:
    """The program `name` stands for, if the worker lists it; RefusedTask otherwise."""
    for entry in listed:
        path = _found(entry)
        if name == entry or (path is not None and os.path.isabs(name) and name == path):
            if path is None:
                raise _refused(name, f"it is listed but not found on this worker's PATH as {entry!r}", listed)
            return path
    raise _refused(name, f"it is not listed in this worker's {SETTING}", listed)


def checked_args(args: object, env: object) -> list[str]:
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError(f"run: args must be a list of str (the program, then its arguments), not {args!r}")
    if not args or not all(isinstance(arg, str) for arg in args):
        raise TypeError(f"run: args must be a non-empty list of str, not {args!r}")
    if env is not None and not (
        isinstance(env, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise TypeError("run: env must be a dict of str to str, added to the worker's environment")
    return list(args)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the program's session (its group: the program and the children it did not move)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _communicate(
    process: subprocess.Popen[bytes], data: bytes | None, deadline: float | None
) -> tuple[bytes, bytes, list[str], bool]:
    """Write `data`, read both streams up to OUTPUT_CAP each; (stdout, stderr, cut, timed out)."""
    streams: dict[Any, tuple[str, bytearray]] = {
        process.stdout: ("stdout", bytearray()),
        process.stderr: ("stderr", bytearray()),
    }
    cut: list[str] = []
    view, offset = memoryview(data or b""), 0
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream, selectors.EVENT_READ)
        if data is not None:
            selector.register(process.stdin, selectors.EVENT_WRITE)
        while selector.get_map():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return bytes(streams[process.stdout][1]), bytes(streams[process.stderr][1]), cut, True
            for key, _ in selector.select(remaining):
                stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
                if stream is process.stdin:
                    try:
                        offset += os.write(key.fd, view[offset : offset + select.PIPE_BUF])
                    except BrokenPipeError:  # it stopped reading: as subprocess, not an error
                        offset = len(view)
                    if offset >= len(view):
                        selector.unregister(stream)
                        stream.close()
                    continue
                chunk = os.read(key.fd, READ_SIZE)
                if not chunk:
                    selector.unregister(stream)
                    continue
                name, kept = streams[stream]
                room = OUTPUT_CAP - len(kept)
                if len(chunk) > room and name not in cut:
                    cut.append(name)
                kept += chunk[: max(room, 0)]
    return bytes(streams[process.stdout][1]), bytes(streams[process.stderr][1]), cut, False


def execute(
    command: list[str],
    argv: list[str],
    data: bytes | None,
    timeout: float | None,
    cwd: str | None,
    env: Mapping[str, str] | None,
) -> tuple[int, bytes, bytes, list[str]]:
    """Run `command` (the resolved path, then the arguments) in a session of its own, `env` added
    to this process's; (returncode, stdout, stderr, streams cut). Past `timeout`, its process
    group is killed and subprocess.TimeoutExpired names `argv`, as the caller gave it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,  # its own process group: a timeout kills its children too
    )
    try:
        stdout, stderr, cut, timed_out = _communicate(process, data, deadline)
        if not timed_out:
            try:
                process.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            _kill_group(process)
            # positional, so that args carries the output: Celery rebuilds it as cls(*args)
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)  # type: ignore[arg-type]
    finally:
        if process.poll() is None:  # the task's time limit, or any error: nothing is left running
            _kill_group(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return process.returncode, stdout, stderr, cut
