"""A local cluster's worker calls the functions of scripts run on its own machine, as asked.

A pool that starts its own worker lists its script in that worker's FARPOOL_ALLOW. A worker
already running here (`farpool up`, or another pool's) cannot be given settings any more, so
a pool that finds one writes a request instead: `<data dir>/scripts/<key>.json`, naming its
script's modules and the folder they are in, removed when the pool stops, or kept until its
results expire when it detaches from work still to run (`farpool submit`; see
producer/local/script_access.py). A worker started by a local cluster (FARPOOL_SCRIPT_REQUESTS,
set by producer/local/cluster.py) on a loopback broker reads those requests when a reference
names a module outside its allowlist, and adds the module for that call, its folder last on the path.

Only a module name and a folder travel, never code, and only through this user's own files:
a request is taken when the requests folder and the file are this user's and writable by
nobody else, the script's folder is this user's, and the process that wrote it still runs
(or, for detached work, its results have not expired).
A worker on another host, or one started by hand, reads nothing and is never widened.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from config import is_loopback_url

REQUESTS_FOLDER = "scripts"
STARTED_SLACK = 0.5  # seconds: psutil's start times are rounded to the clock tick


@dataclass(frozen=True)
class ScriptRequest:
    """A producer's script: the modules to allow, the folder they are imported from, and the
    process asking (its pid and start time: a request outlives no process, nor a reused pid),
    or, for a pool that detached from work still to run (`farpool submit`), until when
    (`until`, seconds since the epoch: when that work's results expire; 0 for none)."""

    modules: tuple[str, ...]
    folder: str
    pid: int
    started: float
    until: float = 0.0

    def to_json(self) -> str:
        fields = {"modules": list(self.modules), "folder": self.folder, "until": self.until}
        return json.dumps({**fields, "pid": self.pid, "started": self.started})

    @classmethod
    def from_json(cls, text: str) -> ScriptRequest:
        raw = json.loads(text)
        modules = tuple(str(module) for module in raw["modules"])
        until = float(raw.get("until", 0.0))
        return cls(modules, str(raw["folder"]), int(raw["pid"]), float(raw["started"]), until)

    def live(self) -> bool:
        """Its process still runs, or its detached work may still run."""
        return time.time() < self.until or _running(self.pid, self.started)


def requests_folder(data_dir: str) -> Path:
    return Path(data_dir).resolve() / REQUESTS_FOLDER


def this_users_alone(path: Path, others: int = stat.S_IWGRP | stat.S_IWOTH) -> bool:
    """True if `path` is no symbolic link, belongs to this user and nobody else may write it."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return not stat.S_ISLNK(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & others


def _running(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < STARTED_SLACK
    except psutil.Error:
        return False


def _folder_ok(folder: str) -> bool:
    """An absolute folder of this user's that others cannot write (a group may: umask 002)."""
    path = Path(folder)
    return path.is_absolute() and path.is_dir() and this_users_alone(path.resolve(), stat.S_IWOTH)


def live_requests(data_dir: str) -> list[ScriptRequest]:
    """The requests under `data_dir` that a worker may take, newest first."""
    folder = requests_folder(data_dir)
    if not this_users_alone(folder):
        return []
    found: list[tuple[float, ScriptRequest]] = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if not this_users_alone(path):
                continue
            request = ScriptRequest.from_json(path.read_text())
            if request.live() and _folder_ok(request.folder):
                found.append((path.stat().st_mtime, request))
    return [request for _, request in sorted(found, key=lambda pair: pair[0], reverse=True)]


def allowlist_for(app: Any, reference: str) -> Sequence[str]:
    """The allowlist to resolve `reference` with: the app's, plus the module it names if this
    worker takes requests and a live one names it (its folder then goes last on sys.path)."""
    allowed: tuple[str, ...] = app.allowlist
    module = reference.partition(":")[0]
    settings = app.settings
    if module in allowed or not settings.script_requests or not is_loopback_url(settings.broker_url):
        return allowed
    for request in live_requests(settings.data_dir):
        if module in request.modules:
            if request.folder not in sys.path:
                sys.path.append(request.folder)
            return (*allowed, module)
    return allowed
