"""A pool's request that this machine's local workers call its script (tasks/script_requests.py).

Written when a pool on a loopback broker finds workers already running (`farpool up`, another
pool's), under the data folder they share with it, and removed when the pool stops; a pool
that detaches from work still to run (`farpool submit`) keeps it until that work's results
expire (FARPOOL_RESULT_EXPIRES). A worker started by a local cluster reads it; any other
worker never does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import psutil

from config import Settings
from producer.local.embedded import server_address
from producer.sending.references import MainScript
from tasks.script_requests import ScriptRequest, requests_folder


def request_path(data_dir: str, key: str) -> Path:
    return requests_folder(data_dir) / f"{key}.json"


def on_this_machine(settings: Settings) -> bool:
    """True if the broker is on a loopback address: its workers that take requests are local."""
    address = server_address(settings.broker_url)
    return address is not None and address.is_loopback


def request_script(settings: Settings, key: str, script: MainScript, modules: list[str]) -> Path | None:
    """Ask this machine's local workers to call `script` (and `modules`, its helpers); the
    request's path, or None when the broker is not on this machine (nobody would read it)."""
    if not on_this_machine(settings):
        return None
    folder = requests_folder(settings.data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # made earlier under another umask: the workers take no other
    request = ScriptRequest(
        modules=tuple(dict.fromkeys([script.module, *modules])),
        folder=script.folder,
        pid=os.getpid(),
        started=psutil.Process().create_time(),
    )
    _sweep(folder)
    path = request_path(settings.data_dir, key)
    _write(path, request)
    return path


def _write(path: Path, request: ScriptRequest) -> None:
    partial = path.with_suffix(".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(request.to_json())
    os.replace(partial, path)  # a worker reads the whole request or none


def _sweep(folder: Path) -> None:
    """Remove the requests no worker takes any more: their process ended, their work expired."""
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if not ScriptRequest.from_json(path.read_text()).live():
                path.unlink()


def withdraw_request(settings: Settings, key: str, keep_for: float = 0.0) -> None:
    """Remove the request; with `keep_for` (seconds), keep it that long after this process
    ends instead: a detached pool's work (`farpool submit`) may not have started yet."""
    path = request_path(settings.data_dir, key)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if keep_for > 0 and path.exists():
            request = ScriptRequest.from_json(path.read_text())
            _write(path, dataclasses.replace(request, until=time.time() + keep_for))
            return
        path.unlink(missing_ok=True)
