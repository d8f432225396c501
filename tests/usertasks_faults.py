"""Tasks for the fault and bad-input tests, loaded by their workers through FARPOOL_INCLUDE.

Runs are counted in a file (one line per run, appended with O_APPEND) rather than in Redis,
so that counting keeps working while the broker itself is the thing being broken.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import shared_task

RUNS = "runs"
HELD = "held"


def record_run(directory: str | os.PathLike[str], item: object) -> None:
    """Append one line `item` to directory/runs: a single write(2) of an O_APPEND file is atomic."""
    fd = os.open(Path(directory) / RUNS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{item}\n".encode())
    finally:
        os.close(fd)


def run_counts(directory: str | os.PathLike[str]) -> dict[str, int]:
    """How many times each item ran, from directory/runs."""
    path = Path(directory) / RUNS
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


def claim_first_hold(directory: str | os.PathLike[str]) -> bool:
    """True exactly once per directory: the first run of the held item."""
    try:
        fd = os.open(Path(directory) / f"{HELD}.claim", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def held_done(directory: str | os.PathLike[str]) -> bool:
    """True once the held run has slept its time and is about to return its result."""
    return (Path(directory) / f"{HELD}.done").exists()


def held_pid(directory: str | os.PathLike[str]) -> int | None:
    """The pid of the process holding the held item, once it has announced itself."""
    path = Path(directory) / HELD
    return int(path.read_text()) if path.exists() else None


@shared_task(name="usertasks_faults.counted")
def counted(
    x: int, directory: str, hold: int | None = None, hold_seconds: float = 0.0, nap: float = 0.0
) -> int:
    """x * x after recording the run; the first run of item `hold` announces its pid, sleeps,
    and marks itself done just before returning.

    The held run is where a test injects its fault: it knows which process runs the item,
    and that the item is in the middle of running.
    """
    record_run(directory, x)
    if x == hold and claim_first_hold(directory):
        announce = Path(directory) / f"{HELD}.tmp"
        announce.write_text(str(os.getpid()))
        announce.rename(Path(directory) / HELD)
        time.sleep(hold_seconds)
        (Path(directory) / f"{HELD}.done").touch()
    elif nap:
        time.sleep(nap)
    return x * x


@shared_task(name="usertasks_faults.touch")
def touch(path: str) -> str:
    """Create the file `path`: if a refused message ever ran, its file is there."""
    Path(path).touch()
    return path
