"""External programs as tasks: `pool.map(run, commands)`, only programs the worker lists.

`run` is a plain function of a built-in module (tasks.contract.BUILT_IN_ALLOWED), so it
travels by name like any other; what it runs is the worker's choice, never the message's:

- only programs named in the worker's own FARPOOL_PROGRAMS (names found on the worker's PATH
  with shutil.which, or absolute paths); anything else is tasks.RefusedTask before anything runs;
- never through a shell: `["echo", "a; rm -rf x"]` prints `a; rm -rf x`;
- the program runs from the path resolved on the worker's own PATH: a PATH in `env` changes the
  program's environment, not which program runs;
- in a session of its own: a timeout (or the task's time limit) kills its whole process group,
  its children included, and raises subprocess.TimeoutExpired in the producer;
- output beyond OUTPUT_CAP per stream is read and dropped (the program never blocks on a full
  pipe), and the result's `truncated` names the streams cut.
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

from tasks.completed import CompletedProgram
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


def _checked(args: object, env: object) -> list[str]:
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


def run(
    args: Sequence[str],
    *,
    input: str | bytes | None = None,
    timeout: float | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    text: bool = False,
) -> CompletedProgram:
    """subprocess.run(args, capture_output=True, ...) on the worker, for a program it lists.

    `env` is added to the worker's environment; `text` decodes the output as UTF-8 (undecodable
    bytes replaced) and `input` may be str or bytes either way. A timeout kills the program's
    process group and raises subprocess.TimeoutExpired (its output so far, as bytes);
    `check=True` raises subprocess.CalledProcessError with the program's stdout and stderr.
    A program killed by signal N has returncode -N.
    """
    argv = _checked(args, env)
    path = program_path(argv[0], listed_programs())
    data = input.encode() if isinstance(input, str) else input
    deadline = None if timeout is None else time.monotonic() + timeout
    process = subprocess.Popen(
        [path, *argv[1:]],
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
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)  # type: ignore[arg-type]
    finally:
        if process.poll() is None:  # the task's time limit, or any error: nothing is left running
            _kill_group(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    out: str | bytes = stdout.decode(errors="replace") if text else stdout
    err: str | bytes = stderr.decode(errors="replace") if text else stderr
    if check and process.returncode:
        # positional, so that args carries the output: Celery rebuilds an exception as cls(*args)
        raise subprocess.CalledProcessError(process.returncode, argv, out, err)
    return CompletedProgram(argv, process.returncode, out, err, cut)
