"""A script of the user's own on a running local cluster (`farpool up`): its functions are
called with nothing set; a worker started by hand is never widened (tasks/script_requests.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from helpers import FARPOOL, free_port, fresh_machine_env, poll, stop_process

from config import load_settings
from producer.local.embedded import EmbeddedServer, server_address
from producer.packages import FARPOOL_ROOT
from tasks.script_requests import ScriptRequest, live_requests, requests_folder

SCRIPT = """\
from producer import Pool


def cube(x):
    return x ** 3


if __name__ == "__main__":
    with Pool() as pool:
        print(pool.map(cube, range(5)))
"""
START_TIMEOUT = 60


def write_script(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    script = project / "basics.py"
    script.write_text(SCRIPT)
    return script


def run_script(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script.name], cwd=script.parent, env=env, capture_output=True, text=True, timeout=120
    )


def started(process: subprocess.Popen[bytes], log: Path, line: str) -> str | None:
    """The log, once `line` is in it; AssertionError if the process ended first."""
    text = log.read_text(errors="replace")
    assert process.poll() is None, text
    return text if line in text else None


@pytest.mark.integration
def test_a_script_calls_its_own_function_on_farpool_up_with_nothing_set(tmp_path: Path) -> None:
    env = fresh_machine_env(str(tmp_path / "data"))
    env.pop("PYTHONPATH", None)
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        up = subprocess.Popen(
            [*FARPOOL, "up"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        poll(lambda: started(up, log, "cluster up on"), "farpool up", START_TIMEOUT)
        done = run_script(write_script(tmp_path), env)
        assert (done.returncode, done.stdout) == (0, "[0, 1, 8, 27, 64]\n"), done.stderr
        assert "starting a local cluster" not in done.stderr  # farpool up's worker ran it
        assert list(requests_folder(env["FARPOOL_DATA_DIR"]).glob("*")) == []  # withdrawn at the end
    finally:
        stop_process(up)


@pytest.mark.integration
def test_a_worker_started_by_hand_is_not_widened(tmp_path: Path) -> None:
    """The same script, a hand-started worker on this machine's broker: refused, as before."""
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    with EmbeddedServer(address, tmp_path / "broker", persistent=False) as server:
        queue = f"farpool-test-{uuid.uuid4().hex[:8]}"
        env = {**fresh_machine_env(str(tmp_path / "data")), "FARPOOL_BROKER_URL": server.url}
        env.update(FARPOOL_QUEUE=queue, FARPOOL_EMBEDDED_BROKER="never")
        env.pop("PYTHONPATH", None)
        log = tmp_path / "worker.log"
        command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-c", "1", "-l", "INFO"]
        with log.open("wb") as output:
            options = {"env": env, "cwd": FARPOOL_ROOT, "stdout": output, "stderr": subprocess.STDOUT}
            worker = subprocess.Popen(command, start_new_session=True, **options)
        try:
            poll(lambda: started(worker, log, " ready."), "the worker", START_TIMEOUT)
            done = run_script(write_script(tmp_path), env)
            assert done.returncode == 1, done.stderr
            assert "RefusedTask" in done.stderr and "module 'basics' is not in FARPOOL_INCLUDE" in done.stderr
        finally:
            stop_process(worker)


def request(folder: Path, pid: int | None = None) -> ScriptRequest:
    pid = pid or os.getpid()
    return ScriptRequest(("basics",), str(folder), pid, psutil.Process(pid).create_time())


def test_a_request_is_taken_only_from_this_users_own_files_of_a_live_process(tmp_path: Path) -> None:
    data, project = tmp_path / "data", tmp_path / "project"
    project.mkdir()
    folder = requests_folder(str(data))
    folder.mkdir(parents=True, mode=0o700)
    mine = folder / "mine.json"
    mine.write_text(request(project).to_json())
    mine.chmod(0o600)
    assert live_requests(str(data)) == [request(project)]
    mine.chmod(0o666)  # anyone may have written it
    assert live_requests(str(data)) == []
    mine.chmod(0o600)
    folder.chmod(0o777)
    assert live_requests(str(data)) == []
    folder.chmod(0o700)
    dead = subprocess.Popen([sys.executable, "-c", ""])
    stale = request(project, dead.pid)
    dead.wait()
    mine.write_text(stale.to_json())
    assert live_requests(str(data)) == []  # its pool's process is gone


def test_a_worker_takes_requests_only_when_a_local_cluster_says_so() -> None:
    assert load_settings(broker_url="redis://127.0.0.1:1/0").script_requests is False
