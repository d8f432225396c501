"""External programs as tasks (tasks/programs.py): only listed programs, no shell, no leftovers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import Cluster
from faults_support import FaultCluster, fault_cluster
from helpers import poll

from producer import CompletedProgram, Pool, run
from tasks import RefusedTask
from tasks.encoding import dumps, loads
from tasks.programs import OUTPUT_CAP

pytestmark = pytest.mark.integration
LISTED = ("echo", "sh", "/bin/cat")


@pytest.fixture(scope="module")
def programs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    """A worker whose FARPOOL_PROGRAMS lists echo, sh (for the tests' own scripts) and /bin/cat."""
    with fault_cluster(tmp_path_factory.mktemp("programs"), programs=LISTED) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pool(programs_cluster: FaultCluster) -> Pool:
    return programs_cluster.pool()


def test_run_is_the_same_function_from_tasks_and_producer() -> None:
    import tasks

    assert tasks.run is run


def test_run_alone_is_callable_by_reference_in_tasks_programs() -> None:
    from config import BUILT_IN_ALLOWED
    from tasks.references import resolve

    assert resolve("tasks.programs:run", BUILT_IN_ALLOWED) is run
    for helper in ("program_path", "execute", "listed_programs"):  # imported, not defined there
        with pytest.raises(RefusedTask, match="not defined there"):
            resolve(f"tasks.programs:{helper}", BUILT_IN_ALLOWED)
    with pytest.raises(RefusedTask, match="not in FARPOOL_INCLUDE"):
        resolve("tasks.launch:execute", BUILT_IN_ALLOWED)


def test_the_result_travels_as_a_completed_process() -> None:
    done = CompletedProgram(["echo", "é"], -9, b"\xff\x00", "text", ["stdout"])
    back = loads(dumps([done]))[0]
    assert back == done and isinstance(back, subprocess.CompletedProcess)
    assert back.truncated == ("stdout",) and "stdout cut" in back.notice


def test_nothing_runs_by_default(cluster: Cluster) -> None:
    with cluster.pool() as pool, pytest.raises(RefusedTask) as refused:
        pool.apply(run, (["echo", "hi"],))
    message = str(refused.value)
    assert "FARPOOL_PROGRAMS" in message and "nothing" in message and "FARPOOL_PROGRAMS=echo" in message


def test_a_program_not_listed_is_refused_before_it_runs(pool: Pool, tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    with pytest.raises(RefusedTask) as refused:
        pool.apply(run, (["rm", "-r", str(doomed)],))
    assert "'rm'" in str(refused.value) and "FARPOOL_PROGRAMS: echo, sh, /bin/cat" in str(refused.value)
    assert doomed.exists()
    with pytest.raises(RefusedTask):  # a listed name elsewhere is not the listed program
        pool.apply(run, ([str(tmp_path / "echo"), "hi"],))


def test_map_over_commands_with_shell_metacharacters_printed_literally(pool: Pool, tmp_path: Path) -> None:
    victim = tmp_path / "x"
    victim.write_text("still here")
    commands = [["echo", "a; rm -rf x"], ["echo", "$HOME", "`id`", "|", "&&", "*"]]
    done = pool.map(run, commands)
    assert [(d.args, d.returncode, d.stdout, d.truncated) for d in done] == [
        (["echo", "a; rm -rf x"], 0, b"a; rm -rf x\n", ()),
        (commands[1], 0, b"$HOME `id` | && *\n", ()),
    ]
    assert isinstance(done[0], subprocess.CompletedProcess) and victim.read_text() == "still here"


def test_input_env_cwd_and_text(pool: Pool, tmp_path: Path) -> None:
    script = 'cat; printf " %s " "$GREETING"; pwd; echo oops >&2'
    options = {"input": "in", "env": {"GREETING": "hi"}, "cwd": str(tmp_path), "text": True}
    done = pool.apply(run, (["sh", "-c", script],), options)
    assert (done.stdout, done.stderr, done.returncode) == (f"in hi {tmp_path}\n", "oops\n", 0)
    assert pool.apply(run, (["/bin/cat"],), {"input": b"\x00\xff"}).stdout == b"\x00\xff"


def test_a_path_in_env_does_not_change_which_program_runs(pool: Pool, tmp_path: Path) -> None:
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\nprintf fake\n")
    fake.chmod(0o755)
    done = pool.apply(run, (["echo", "real"],), {"env": {"PATH": str(tmp_path)}})
    assert done.stdout == b"real\n"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_timeout_kills_the_program_and_its_children(pool: Pool) -> None:
    script = "sleep 300 & echo $$ $!; sleep 300"
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        pool.apply(run, (["sh", "-c", script],), {"timeout": 1})
    assert expired.value.cmd == ["sh", "-c", script] and expired.value.timeout == 1
    shell, child = (int(pid) for pid in expired.value.output.split())
    poll(lambda: gone(shell) and gone(child), "the program and its child to be killed")


def test_a_program_killed_by_a_signal_has_a_negative_returncode(pool: Pool) -> None:
    assert pool.apply(run, (["sh", "-c", "kill -TERM $$"],)).returncode == -15


def test_check_raises_called_process_error_with_the_workers_stderr(pool: Pool) -> None:
    command = ["sh", "-c", "echo partial; echo 'no such file' >&2; exit 3"]
    with pytest.raises(subprocess.CalledProcessError) as failed:
        pool.apply(run, (command,), {"check": True, "text": True})
    error = failed.value
    assert type(error) is subprocess.CalledProcessError
    assert (error.returncode, error.cmd) == (3, command)
    assert (error.stdout, error.stderr) == ("partial\n", "no such file\n")
    assert pool.apply(run, (command,)).returncode == 3  # without check, a result


def test_output_beyond_the_cap_is_cut_and_said(pool: Pool) -> None:
    script = f"head -c {OUTPUT_CAP + 100_000} /dev/zero; echo done >&2"
    done = pool.apply(run, (["sh", "-c", script],))
    assert len(done.stdout) == OUTPUT_CAP and done.stderr == b"done\n" and done.returncode == 0
    assert done.truncated == ("stdout",) and "stdout cut" in done.notice


def test_the_worker_resolves_listed_names_on_its_own_path() -> None:
    from tasks.launch import program_path

    assert os.path.isabs(program_path("echo", ["echo"]))
    assert program_path("/bin/echo", ["/bin/echo"]) == "/bin/echo"
    with pytest.raises(RefusedTask, match="listed but not found"):
        program_path("no-such-program-xyz", ["no-such-program-xyz"])
    with pytest.raises(RefusedTask, match="nothing"):
        program_path("echo", [])
