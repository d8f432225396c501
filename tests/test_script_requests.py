"""A script of the user's own on a running local cluster (`farpool up`): its functions are
called with nothing set; a worker started by hand is never widened (tasks/script_requests.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from helpers import FARPOOL, free_port, fresh_machine_env, poll, run_cli, stop_process

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
SQUARES = """\
import os
import time


def square(x):
    return x * x


def power(x, exponent=2):
    return x ** exponent


def wait_for(path):
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.path.exists(path)
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


def users_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment on a fresh machine: nothing of the tests' folder on the path."""
    env = fresh_machine_env(str(tmp_path / "data"))
    env.pop("PYTHONPATH", None)
    return env


@contextmanager
def farpool_up(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`farpool up` (run from farpool's folder, as `make up` does), once its cluster is up."""
    with log.open("wb") as output:
        up = subprocess.Popen(
            [*FARPOOL, "up"], env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        poll(lambda: started(up, log, "cluster up on"), "farpool up", START_TIMEOUT)
        yield up
    finally:
        stop_process(up)


@pytest.mark.integration
def test_a_script_calls_its_own_function_on_farpool_up_with_nothing_set(tmp_path: Path) -> None:
    env = users_env(tmp_path)
    with farpool_up(env, tmp_path / "up.log"):
        done = run_script(write_script(tmp_path), env)
        assert (done.returncode, done.stdout) == (0, "[0, 1, 8, 27, 64]\n"), done.stderr
        assert "starting a local cluster" not in done.stderr  # farpool up's worker ran it
        assert list(requests_folder(env["FARPOOL_DATA_DIR"]).glob("*")) == []  # withdrawn at the end


def squares_folder(tmp_path: Path) -> Path:
    """A user's folder holding squares.py, as `python -c 'import squares'` run there finds it."""
    folder = tmp_path / "squares"
    folder.mkdir()
    (folder / "squares.py").write_text(SQUARES)
    return folder


@pytest.mark.integration
def test_the_cli_calls_a_module_of_its_folder_on_farpool_up_with_nothing_set(tmp_path: Path) -> None:
    """Every subcommand taking a plain function, run from the module's folder: `farpool up`'s
    worker was asked to call it, as a script's pool asks (a request withdrawn at the end, but
    a submit's, kept until its results expire)."""
    env, folder = users_env(tmp_path), squares_folder(tmp_path)
    with farpool_up(env, tmp_path / "up.log"):
        calls = {
            ("map", "squares:square", "1", "2", "3"): "[1, 4, 9]",
            ("starmap", "squares:power", "[2, 3]", "[3]"): "[8, 9]",
            ("apply", "squares:power", "2", "--kwargs", '{"exponent": 5}'): "32",
        }
        for args, printed in calls.items():
            done = run_cli(*args, env=env, cwd=folder)
            assert (done.returncode, done.stdout) == (0, printed + "\n"), (args, done.stderr)
            assert "starting a local cluster" not in done.stderr  # farpool up's worker ran it
        assert list(requests_folder(env["FARPOOL_DATA_DIR"]).glob("*")) == []
        advice = run_cli("advise", "squares:square", "--sample", "3", "--budget", "0.2", env=env, cwd=folder)
        assert advice.returncode == 0 and "advice:" in advice.stdout, advice.stderr
        # Two chunks on farpool up's one process: the second starts after the first, which
        # waits for a file made once `farpool submit` has ended.
        release = tmp_path / "release"
        items = [json.dumps(str(release))] * 2
        submitted = run_cli("submit", "squares:wait_for", *items, "--chunksize", "1", env=env, cwd=folder)
        assert submitted.returncode == 0, submitted.stderr
        release.touch()
        done = run_cli("result", submitted.stdout.strip(), "--timeout", "60", env=env, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, "[true, true]\n"), done.stderr


@pytest.mark.integration
def test_the_cli_calls_a_module_of_its_folder_on_its_own_local_cluster(tmp_path: Path) -> None:
    """No cluster running: the worker the CLI's pool starts lists the module, as a script's does."""
    done = run_cli("map", "squares:square", "1", "2", env=users_env(tmp_path), cwd=squares_folder(tmp_path))
    assert (done.returncode, done.stdout) == (0, "[1, 4]\n"), done.stderr


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
            # The CLI too; its hint names the folder holding the module, which the CLI never
            # imported, as Python finds it from the folder the CLI runs in (not a placeholder).
            folder = squares_folder(tmp_path)
            done = run_cli("map", "squares:square", "1", "2", env=env, cwd=folder)
            assert done.returncode == 1 and "module 'squares' is not in FARPOOL_INCLUDE" in done.stderr
            fix = f"start that worker with FARPOOL_INCLUDE=squares FARPOOL_IMPORT_PATH={folder}\n"
            assert done.stderr.endswith(fix), done.stderr
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
    detached = dataclasses.replace(stale, until=time.time() + 60)
    mine.write_text(detached.to_json())
    assert live_requests(str(data)) == [detached]  # its pool detached from work not yet run
    mine.write_text(dataclasses.replace(stale, until=time.time() - 1).to_json())
    assert live_requests(str(data)) == []  # and that work's results have expired


def test_a_worker_takes_requests_only_when_a_local_cluster_says_so() -> None:
    assert load_settings(broker_url="redis://127.0.0.1:1/0").script_requests is False
