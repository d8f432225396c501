"""The command line's messages, as people expect them: the real `farpool` in a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import Cluster
from helpers import FARPOOL, free_port, fresh_machine_env, poll, run_cli


def test_version() -> None:
    done = run_cli("--version")
    assert (done.returncode, done.stdout) == (0, "farpool, version 0.1.0\n")


def no_broker_env() -> dict[str, str]:
    return {**fresh_machine_env("/nonexistent"), "FARPOOL_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}


def test_cluster_without_a_broker_is_one_line_and_exit_2() -> None:
    env = no_broker_env()
    done = run_cli("cluster", env=env, timeout=30)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"farpool: no broker answers at {env['FARPOOL_BROKER_URL']}\n"


@pytest.mark.parametrize("place", ["before", "after"])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(place: str) -> None:
    args = ["--debug", "cluster"] if place == "before" else ["cluster", "--debug"]
    done = run_cli(*args, env=no_broker_env(), timeout=30)
    assert done.returncode != 0 and "Traceback" in done.stderr and "BrokerUnavailable" in done.stderr


def test_a_closed_pipe_ends_quietly(cluster: Cluster) -> None:
    command = [*FARPOOL, "cluster"]
    with subprocess.Popen(
        command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before the first line is written
        stderr = process.stderr.read()
        assert process.wait(60) == 141
    assert stderr == b""


@pytest.mark.parametrize("url", ["redis://127.0.0.1:abc/0", "redis://:secret@127.0.0.1:99999/0"])
def test_a_bad_port_names_the_variable(url: str) -> None:
    done = run_cli("cluster", env={**no_broker_env(), "FARPOOL_BROKER_URL": url})
    assert done.returncode == 2 and "secret" not in done.stderr
    assert done.stderr.startswith("farpool: FARPOOL_BROKER_URL: the port in URL ")
    assert done.stderr.count("\n") == 1


def test_an_unquoted_word_says_how_to_quote_it() -> None:
    done = run_cli("map", "tasks.examples.square", "hello", env=no_broker_env())
    assert done.returncode == 2
    assert "a string is quoted twice, once for the shell: '\"hello\"'" in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_keeps_farpools_notices_off_stderr(tmp_path, flag: str) -> None:
    env = fresh_machine_env(str(tmp_path / ".farpool"))
    done = run_cli("demo", flag, env=env)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Dataset: ")


def test_tasks_lists_what_each_worker_can_run(cluster: Cluster) -> None:
    done = run_cli("tasks", "--json", env=cluster.env)
    assert done.returncode == 0, done.stderr
    workers = json.loads(done.stdout)
    (worker,) = [info for name, info in workers.items() if cluster.local.node_name.split("@")[0] in name]
    assert "usertasks.cube" in worker["tasks"] and "tasks.examples.square" in worker["tasks"]
    assert not [name for name in worker["tasks"] if name.startswith(("celery.", "farpool."))]
    assert worker["allowlist"][:1] == ["tasks.examples"] and "usertasks" in worker["allowlist"]
    table = run_cli("tasks", env=cluster.env)
    assert "functions: any plain function in tasks.examples" in table.stdout


def test_an_unknown_task_name_suggests_close_ones(cluster: Cluster) -> None:
    done = run_cli("map", "tasks.examples.sqare", "1", env=cluster.env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "did you mean 'tasks.examples.square'" in done.stderr and "`farpool tasks`" in done.stderr


@pytest.mark.integration
def test_up_with_flower_on_a_busy_port_says_which_process_and_why(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**fresh_machine_env(str(tmp_path / ".farpool")), "FARPOOL_FLOWER_PORT": str(port)}
        env.pop("FARPOOL_FLOWER_BASIC_AUTH", None)
        done = run_cli("up", "--flower", env=env, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    warning = "farpool: Flower will serve without a password: set FARPOOL_FLOWER_BASIC_AUTH=user:password"
    assert [line for line in lines if line.startswith(warning)] != []
    assert "farpool: Flower exited with code 1; its last lines:" in lines
    assert any("Address already in use" in line for line in lines)


@pytest.mark.integration
@pytest.mark.parametrize("where", ["FARPOOL_DATA_DIR", "the user's data folder"])
def test_down_stops_what_up_runs_and_says_what(tmp_path, where: str) -> None:
    data_dir = tmp_path / ".farpool"
    env = fresh_machine_env(str(data_dir))
    if where != "FARPOOL_DATA_DIR":  # nothing set: both find the same default folder
        del env["FARPOOL_DATA_DIR"]
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        data_dir = tmp_path / "xdg" / "farpool"
    up = subprocess.Popen([*FARPOOL, "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def recorded() -> list[dict[str, object]] | None:
            records = list((data_dir / "running").glob("*.json"))
            children = json.loads(records[0].read_text())["children"] if records else []
            return children if any(child["name"] == "the local worker" for child in children) else None

        children = poll(recorded, "farpool up to record its worker")
        done = run_cli("down", env=env)
        assert done.returncode == 0, done.stderr
        (line,) = done.stdout.splitlines()
        assert line.startswith(f"stopped what farpool up (pid {up.pid}) started: ")
        assert "the local worker (pid" in line
        assert up.wait(60) == 0
        assert [child for child in children if Path(f"/proc/{child['pid']}").exists()] == []
        assert list((data_dir / "running").glob("*.json")) == []
        again = run_cli("down", env=env)
        assert again.stdout == f"nothing to stop under {data_dir}\n"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.mark.parametrize("place", ["before", "after"])
def test_verbose_says_which_servers_and_queue_it_uses(place: str) -> None:
    env = {**no_broker_env(), "FARPOOL_QUEUE": "q-verbose"}
    args = ["-v", "cluster"] if place == "before" else ["cluster", "--verbose"]
    done = run_cli(*args, env=env, timeout=30)
    url = env["FARPOOL_BROKER_URL"]
    assert f"farpool: broker {url}, result backend {url[:-1]}1, queue 'q-verbose'" in done.stderr


def test_bench_belongs_to_make_bench_not_to_the_users_cli() -> None:
    done = run_cli("bench")
    assert done.returncode == 2 and "No such command 'bench'" in done.stderr
