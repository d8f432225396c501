"""What local clusters run under a data directory, recorded for `farpool down`.

A LocalCluster writes `<data_dir>/running/<pid>-<id>.json` (its owner, and each process it
started: name, pid, start time) and removes it when it stops. `farpool down` stops what the
records name: `farpool up` by its own SIGTERM (it then stops its cluster), everything else by
process group, SIGTERM then SIGKILL. A pid is only signalled while its start time is still the
one recorded, so a reused pid is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from producer.local.children import ChildProcess

UP = "farpool up"


@dataclass(frozen=True)
class Recorded:
    name: str
    pid: int
    started: int | None  # clock ticks after boot, from /proc/<pid>/stat

    def alive(self) -> bool:
        """Running, and still the recorded process (not another one that got its pid)."""
        return self.started is not None and start_time(self.pid) == self.started


def start_time(pid: int) -> int | None:
    """When process `pid` started (a pid is reused, this pair is not); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def record_path(data_dir: str, key: str) -> Path:
    return Path(data_dir).resolve() / "running" / f"{key}.json"


def write_record(data_dir: str, key: str, owner: str, children: list[ChildProcess]) -> None:
    """Record this process (as `owner`) and the children it started, under `key`."""
    path = record_path(data_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [{"name": child.name, "pid": child.pid, "started": start_time(child.pid)} for child in children]
    record = {"owner": {"name": owner, "pid": os.getpid(), "started": start_time(os.getpid())}}
    path.write_text(json.dumps({**record, "children": entries}))


def remove_record(data_dir: str, key: str) -> None:
    record_path(data_dir, key).unlink(missing_ok=True)


def _wait_gone(processes: list[Recorded], timeout: float) -> list[Recorded]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [process for process in processes if process.alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _signal_group(process: Recorded, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_recorded(data_dir: str, grace: float) -> list[str]:
    """Stop every recorded cluster under `data_dir`; one line per cluster saying what stopped."""
    said = []
    for path in sorted((Path(data_dir).resolve() / "running").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            record = json.loads(path.read_text())
            owner = Recorded(**record["owner"])
            children = [Recorded(**child) for child in record["children"]]
            alive = [child for child in children if child.alive()]
            if owner.name == UP and owner.alive():
                os.kill(owner.pid, signal.SIGTERM)  # it stops its cluster itself
                _wait_gone([owner, *alive], grace)
            for child in alive:
                _signal_group(child, signal.SIGTERM)
            for child in _wait_gone(alive, grace):
                _signal_group(child, signal.SIGKILL)
            _wait_gone(alive, grace)
            if alive or owner.name == UP:
                stopped = ", ".join(f"{child.name} (pid {child.pid})" for child in alive) or "nothing else"
                said.append(f"stopped what {owner.name} (pid {owner.pid}) started: {stopped}")
        path.unlink(missing_ok=True)
    return said
