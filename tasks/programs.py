"""External programs as tasks: `pool.map(run, commands)`, only programs the worker lists.

`run` is a plain function of a built-in module (config.BUILT_IN_ALLOWED), so it
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

import subprocess
from collections.abc import Mapping, Sequence

from tasks.completed import CompletedProgram
from tasks.launch import OUTPUT_CAP, checked_args, execute, listed_programs, program_path

__all__ = ["OUTPUT_CAP", "run"]


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
    argv = checked_args(args, env)
    path = program_path(argv[0], listed_programs())
    data = input.encode() if isinstance(input, str) else input
    returncode, stdout, stderr, cut = execute([path, *argv[1:]], argv, data, timeout, cwd, env)
    out: str | bytes = stdout.decode(errors="replace") if text else stdout
    err: str | bytes = stderr.decode(errors="replace") if text else stderr
    if check and returncode:
        # positional, so that args carries the output: Celery rebuilds an exception as cls(*args)
        raise subprocess.CalledProcessError(returncode, argv, out, err)
    return CompletedProgram(argv, returncode, out, err, cut)
