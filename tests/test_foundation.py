"""The foundation end to end: demo, the worker banner, the embedded broker, the CLI's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from conftest import TESTS_DIR, Cluster, free_port
from helpers import FARPOOL, fresh_machine_env, run_cli

import tasks.examples  # noqa: F401 - registers the example tasks called below

DATASET_LINE = "Dataset: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]"
RESULT_LINE = "Result: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196]"


def test_demo_prints_the_seeds_two_lines_on_the_cluster(cluster: Cluster) -> None:
    done = run_cli("demo", env=cluster.env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [DATASET_LINE, RESULT_LINE]


def test_demo_on_a_fresh_machine_starts_and_stops_its_own_broker_and_worker(tmp_path) -> None:
    env = fresh_machine_env(str(tmp_path / ".farpool"), concurrency=2)
    url = env["FARPOOL_BROKER_URL"]
    done = run_cli("demo", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [DATASET_LINE, RESULT_LINE]
    assert "starting a local cluster" in done.stderr
    # The broker a pool starts for itself keeps nothing: a later run never replays this one.
    assert not list((tmp_path / ".farpool").rglob("appendonlydir"))
    assert not list((tmp_path / ".farpool").rglob("dump.rdb"))
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_worker_banner_shows_prefork_with_one_process_per_core(cluster: Cluster) -> None:
    env = cluster.env
    del env["FARPOOL_CONCURRENCY"]
    banner = next((line for line in worker_banner(env) if "concurrency:" in line), "")
    assert banner, "the worker printed no banner"
    assert f"concurrency: {os.cpu_count()} (prefork)" in banner


def worker_banner(env: dict[str, str], *options: str) -> list[str]:
    """A `celery -A tasks worker`'s output up to its banner's `task events:` line; then it stops."""
    with subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--hostname", "banner@%h", *options],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as worker:
        try:
            assert worker.stdout is not None
            banner = []
            for line in worker.stdout:
                banner.append(line)
                if ".> task events:" in line:
                    break
        finally:
            worker.terminate()
    return banner


def test_worker_banner_shows_the_urls_as_written(cluster: Cluster) -> None:
    """Issue 23: `tasks.transport:Transport://:**@127.0.0.1:6393/0`, kombu's class path and a
    mask for a password that does not exist; farpool's results URL had `tasks.backend:...+`."""
    banner = worker_banner(cluster.env)
    url = cluster.settings.broker_url
    assert url.startswith("redis://") and "@" not in url
    expected = [f".> transport:   {url}", f".> results:     {cluster.settings.backend_url}"]
    assert [line.strip() for line in banner if ".> transport:" in line or ".> results:" in line] == [
        f"- ** ---------- {line}" for line in expected
    ], "".join(banner)


def test_worker_banner_says_task_events_follow_the_monitors(cluster: Cluster) -> None:
    """Issue 23: `task events: OFF (enable -E ...)`, then `Task events on: a monitor is watching.`"""
    events = [line for line in worker_banner(cluster.env) if ".> task events:" in line]
    assert events and events[0].rstrip().endswith(
        ".> task events: on while a monitor watches (Flower, celery events), off otherwise"
    ), events
    with_e = [line for line in worker_banner(cluster.env, "-E") if ".> task events:" in line]
    assert with_e and with_e[0].rstrip().endswith(".> task events: ON"), with_e


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FARPOOL_BROKER_URL", "amqp://guest:pw@localhost//"), ("FARPOOL_CONCURRENCY", "-1")],
)
@pytest.mark.parametrize(
    "command",
    [[*FARPOOL, "demo"], [sys.executable, "-m", "celery", "-A", "tasks", "worker"]],
    ids=["farpool", "celery-worker"],
)
def test_bad_setting_is_one_line_and_exit_2(variable: str, value: str, command: list[str]) -> None:
    done = subprocess.run(
        command,
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"farpool: {variable}: "), done.stderr
    assert "pw@" not in done.stderr


def worker_that_exits(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`celery -A tasks worker` expected to stop by itself at start."""
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_worker_whose_include_cannot_be_imported_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Issue 23: a 64-line traceback ending in ModuleNotFoundError, exit 1."""
    env = {**os.environ, "FARPOOL_INCLUDE": "usertasks,basics", "FARPOOL_IMPORT_PATH": str(tmp_path)}
    done = worker_that_exits(env)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if "SecurityWarning" not in line]
    error = lines[-1]
    assert error.startswith("farpool: FARPOOL_INCLUDE: module 'basics' cannot be imported"), done.stderr
    assert f"FARPOOL_IMPORT_PATH={tmp_path}" in error and TESTS_DIR in error, error
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("password", ["", "hunter2"])
def test_a_hand_started_worker_with_no_broker_on_this_machine_says_what_to_run(password: str) -> None:
    """Issue 23: `celery -A tasks worker` on a loopback URL where nothing listens retried for ever."""
    url = f"redis://{':' + password + '@' if password else ''}127.0.0.1:{free_port()}/0"
    env = {**os.environ, "FARPOOL_BROKER_URL": url, "FARPOOL_EMBEDDED_BROKER": "auto"}
    env.pop("FARPOOL_RESULT_BACKEND", None)
    done = worker_that_exits(env)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("farpool: ")]
    shown = url.replace(password, "***") if password else url
    assert errors == [
        f"farpool: no broker answers at {shown}, on this machine: start one with `farpool up` (the "
        "bundled broker and a worker), or start Redis there; then start this worker again"
    ], done.stderr
    assert "Traceback" not in done.stderr and (not password or password not in done.stderr + done.stdout)


def test_broker_down_with_embedded_never_is_one_line_exit_2() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    env = {**os.environ, "FARPOOL_BROKER_URL": url, "FARPOOL_EMBEDDED_BROKER": "never"}
    done = run_cli("demo", env=env, timeout=30)
    assert done.returncode == 2
    masked = url.replace("hunter2", "***")
    assert done.stderr.strip().splitlines() == [
        f"farpool: no broker answers at {masked} (FARPOOL_EMBEDDED_BROKER=never)"
    ]


def test_map_runs_on_the_worker(cluster: Cluster) -> None:
    with cluster.pool() as pool:
        assert pool.map("tasks.examples.square", range(50), chunksize=7) == [x * x for x in range(50)]


def test_chunks_call_the_plain_function_unless_the_task_overrides_call() -> None:
    from celery import Task

    from tasks import app
    from tasks.examples import square
    from tasks.references import overrides_call

    class Counting(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            return super().__call__(*args, **kwargs)

    @app.task(name="tests.counting_square", base=Counting, shared=False)
    def counting_square(x: int) -> int:
        return x * x

    assert not overrides_call(app.tasks[square.name])
    assert overrides_call(counting_square)
