"""Life cycle: nothing orphaned, nothing replayed, no key left behind, nothing done on import.

Each test here is a regression test for one problem of issue 9, seen on an earlier main.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import redis
from conftest import Cluster
from faults_support import alive
from helpers import fresh_machine_env, poll, result_keys, run_cli
from usertasks_faults import run_counts

from producer import Pool
from producer.local.cluster import descendant_pids
from tasks.examples import fail_on, square
from tasks.wire import DISCARDED

ORPHAN_DEADLINE = 5.0
USER_TASKS = "usertasks,usertasks_faults"

# A user's script: starts a pool (and so, on a fresh machine, the bundled broker and a worker),
# says so, then runs whatever argv[1] names (JSON: [method, task, items, chunksize]) and waits.
SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from producer import Pool

    method, task, items, chunksize = json.loads(sys.argv[1])
    with Pool() as pool:
        print("pool ready", flush=True)
        result = getattr(pool, method)(task, items, chunksize)
        print("sent", flush=True)
        print(json.dumps(result.get()), flush=True)
        if len(sys.argv) > 2:
            time.sleep(float(sys.argv[2]))
    """
)


def write_script(tmp_path: Path) -> Path:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


def start_script(
    script: Path, env: dict[str, str], call: list[object], linger: float | None = None
) -> subprocess.Popen[str]:
    args = [sys.executable, str(script), json.dumps(call)] + ([str(linger)] if linger is not None else [])
    return subprocess.Popen(
        args, env=env, cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_until(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdout is not None
    for got in process.stdout:
        if got.strip() == line:
            return
    raise AssertionError(f"the script ended before printing {line!r}: {process.stderr.read()}")  # type: ignore[union-attr]


def user_env(tmp_path: Path, concurrency: int = 1) -> dict[str, str]:
    return fresh_machine_env(str(tmp_path / ".farpool"), concurrency=concurrency, FARPOOL_INCLUDE=USER_TASKS)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_script_leaves_no_process_of_its_local_cluster(tmp_path: Path, signum: int) -> None:
    script = write_script(tmp_path)
    cluster: list[int] = []
    with start_script(script, user_env(tmp_path), ["map_async", "tasks.examples.nap", [30], 1]) as process:
        try:
            read_until(process, "sent")
            cluster = descendant_pids(process.pid)
            assert len(cluster) >= 3, f"expected broker, worker and its child, got {cluster}"
            process.send_signal(signum)
            process.wait(30)
            poll(
                lambda: not [pid for pid in cluster if alive(pid)],
                "every process of the script's local cluster to end",
                timeout=ORPHAN_DEADLINE,
            )
        finally:
            kill_survivors(cluster)


def test_a_piped_script_ends_when_the_script_is_killed(tmp_path: Path) -> None:
    """`python script.py | cat` must return once the script is gone: no child holds the pipe."""
    script = write_script(tmp_path)
    call = json.dumps(["map_async", "tasks.examples.nap", [30], 1])
    pipeline = f"{sys.executable} {script} '{call}' | cat"
    cluster: list[int] = []
    with subprocess.Popen(
        ["sh", "-c", pipeline], env=user_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as shell:
        try:
            assert shell.stdout is not None
            assert shell.stdout.readline().strip() == b"pool ready"
            python = poll(
                lambda: [pid for pid in descendant_pids(shell.pid) if is_script(pid, script)], "pid"
            )
            cluster = descendant_pids(python[0])
            os.kill(python[0], signal.SIGKILL)
            assert shell.stdout.read() is not None  # returns only once every writer has closed the pipe
            shell.wait(30)
        finally:
            kill_survivors(cluster)


def kill_survivors(pids: list[int]) -> None:
    """SIGKILL whichever of these processes still runs (what the bug, or a failed test, leaves)."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def is_script(pid: int, script: Path) -> bool:
    try:
        return str(script) in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_the_next_run_does_not_replay_a_killed_runs_work(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    env = user_env(tmp_path)
    script = write_script(tmp_path)
    slow = [[x, str(runs), None, 0.0, 2.0] for x in range(6)]
    with start_script(script, env, ["starmap_async", "usertasks_faults.counted", slow, 1]) as first:
        read_until(first, "sent")
        poll(lambda: run_counts(runs), "the first chunk to start")
        cluster = descendant_pids(first.pid)
        first.kill()
        first.wait(30)
        kill_survivors(cluster)  # whatever an older farpool left running, as a user would clean up
    before = run_counts(runs)
    second = subprocess.run(
        [sys.executable, str(script), json.dumps(["map_async", "usertasks.cube", [0, 1, 2, 3], 1])],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "[0, 1, 8, 27]"
    assert run_counts(runs) == before, "the second run ran the killed run's chunks"


def test_collected_elsewhere_leaves_no_key_and_cannot_be_collected_twice(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    with cluster.pool() as sender:
        sent = sender.map_async(square, range(10), chunksize=2)
        with cluster.pool() as collector:
            assert collector.attach(sent.id).get(60) == [x * x for x in range(10)]
        assert sent.get(60) == [x * x for x in range(10)]
    assert result_keys(client) == before
    again = run_cli("result", sent.id, "--timeout", "20", env=cluster.env)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "no result" in again.stderr
    assert result_keys(client) == before


def test_a_result_waits_in_redis_for_another_process_while_its_sender_lives(cluster: Cluster) -> None:
    with cluster.pool() as sender:
        sent = sender.map_async(square, range(10), chunksize=2)
        sent.wait(60)
        assert sent.ready()
        other = run_cli("result", sent.id, "--timeout", "20", env=cluster.env)
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout) == [x * x for x in range(10)]
        assert sent.get(0) == [x * x for x in range(10)]


def test_an_apply_async_collected_by_another_process(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    with cluster.pool() as sender:
        sent = sender.apply_async(square, (7,))
        other = run_cli("result", sent.id, "--timeout", "20", env=cluster.env)
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout) == 49
    assert result_keys(client) == before


def test_an_unknown_id_is_an_error_and_leaves_nothing(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    unknown = str(uuid.uuid4())
    done = run_cli("result", unknown, env=cluster.env, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"farpool: no result is known under id {unknown!r}"), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert result_keys(client) == before


def test_an_unknown_id_is_an_error_from_the_python_api_too(cluster: Cluster) -> None:
    unknown = str(uuid.uuid4())
    code = (
        f"import producer\ntry:\n    producer.result({unknown!r})\n"
        "except producer.UnknownResult as error:\n    print(error)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"no result is known under id {unknown!r}"), done.stdout


def test_a_failed_map_leaves_no_revoked_key(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    with cluster.pool() as pool, pytest.raises(ValueError, match="item 3 is bad"):
        pool.map(fail_on, range(40), chunksize=1)
    # The revoked chunks reach the worker after the map failed: it must store nothing for them.
    poll(lambda: cluster.app.backend.client.llen(cluster.settings.queue) == 0, "the queue to drain")
    with cluster.pool() as pool:  # a later map on the same worker runs after the revoked ones
        assert pool.map(square, range(4)) == [0, 1, 4, 9]
    assert result_keys(client) == before


def farpool_state(client: redis.Redis) -> tuple[set[bytes], set[bytes]]:
    """farpool's keys, and the discard marks in DISCARDED (a key many calls share)."""
    keys = set(client.scan_iter(match=b"farpool-*", count=1000))
    return keys, set(client.zrange(DISCARDED, 0, -1))


def left_behind(client: redis.Redis, before: tuple[set[bytes], set[bytes]]) -> list[bytes]:
    """The farpool keys and discard marks that were not there `before`."""
    keys, marks = farpool_state(client)
    return sorted((keys - before[0] - {DISCARDED.encode()}) | (marks - before[1]))


@pytest.mark.parametrize("method", ["map", "map_async"])
def test_a_failed_map_leaves_no_farpool_key_once_its_chunks_have_ended(cluster: Cluster, method: str) -> None:
    """Issue 21: the marks of the revoked chunks the worker met stayed in farpool-discarded."""
    client = cluster.app.backend.client
    before = farpool_state(client)
    with cluster.pool() as pool:
        with pytest.raises(ValueError, match="item 3 is bad"):
            if method == "map":
                pool.map(fail_on, range(40), chunksize=1)
            else:
                pool.map_async(fail_on, range(40), chunksize=1).get(60)
        pool.close()
        pool.join()  # as multiprocessing's: returns once the chunks still running have ended
    poll(lambda: not left_behind(client, before), "the failed map's farpool keys and marks to go")


@pytest.mark.parametrize("method", ["starmap", "starmap_async"])
def test_a_failed_maps_running_chunk_keeps_its_mark_until_it_stores(cluster: Cluster, method: str) -> None:
    client = cluster.app.backend.client
    before = farpool_state(client)
    counter = f"test-started-{uuid.uuid4().hex}"
    items = [(-1, counter), (5, counter)]
    try:
        with cluster.pool() as pool:
            with pytest.raises(ValueError, match="asked to fail"):
                if method == "starmap":
                    pool.starmap("usertasks.counted_nap", items, chunksize=1)
                else:
                    pool.starmap_async("usertasks.counted_nap", items, chunksize=1).get(60)
            poll(lambda: client.get(counter) == b"2", "the napping chunk to start")
            assert left_behind(client, before), "the running chunk's mark must stay until it stores"
            pool.close()
            pool.join()  # waits for the napping chunk: its store is dropped
        poll(lambda: not left_behind(client, before), "the dropped store's marks to go")
    finally:
        client.delete(counter)


def test_terminate_stops_a_running_apply_async(cluster: Cluster) -> None:
    """A recorded call's id is not a chord's gather task: terminate() must still revoke it."""
    client = cluster.app.backend.client
    counter = f"test-started-{uuid.uuid4().hex}"
    try:
        with cluster.pool() as pool:
            pool.apply_async("usertasks.counted_nap", (120, counter))
            poll(lambda: client.get(counter) == b"1", "the call to start")
        inspect = cluster.app.control.inspect(timeout=2)
        poll(lambda: not any((inspect.active() or {"?": ["?"]}).values()), "the worker to stop the call")
    finally:
        client.delete(counter)


def test_a_terminated_map_async_leaves_no_key(cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    with cluster.pool() as pool:
        pool.map_async("tasks.examples.nap", [0.2] * 12, chunksize=1)
    with cluster.pool() as pool:
        assert pool.map(square, range(4), chunksize=1) == [0, 1, 4, 9]
    poll(lambda: result_keys(client) == before, "the terminated map's keys to be gone")


def test_terminate_leaves_no_message_of_its_own_in_the_queue(cluster: Cluster) -> None:
    """The worker does not have to meet each revoked message: terminate() takes them back."""
    client = cluster.app.backend.client
    queue = cluster.settings.queue
    with cluster.pool() as pool:
        pool.map_async("tasks.examples.nap", [0.05] * 2000, chunksize=1)
        assert client.llen(queue) > 0
    assert client.llen(queue) == 0
    with cluster.pool() as pool:
        assert pool.map(square, range(4), chunksize=1) == [0, 1, 4, 9]


def loopback_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.2", "[::1]"])
def test_the_bundled_broker_serves_any_loopback_address(tmp_path: Path, host: str) -> None:
    if host == "[::1]" and not loopback_ipv6():
        pytest.skip("this machine has no IPv6 loopback")
    env = user_env(tmp_path)
    port = env["FARPOOL_BROKER_URL"].rsplit(":", 1)[1]
    env["FARPOOL_BROKER_URL"] = f"redis://{host}:{port}"
    done = run_cli("map", "tasks.examples.square", "1", "2", "3", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [1, 4, 9]


IMPORT_CHECK = textwrap.dedent(
    """
    from kombu.transport import redis as kombu_redis
    original = kombu_redis.Channel._create_client
    import producer, tasks
    assert kombu_redis.Channel._create_client is original, "kombu was patched on import"
    try:
        producer.Pool()
    except Exception as error:
        print(type(error).__name__, error)
    """
)


def test_importing_does_not_exit_or_patch_and_a_bad_setting_is_raised_on_use(tmp_path: Path) -> None:
    env = {**os.environ, "FARPOOL_CONCURRENCY": "-1"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SettingsError FARPOOL_CONCURRENCY"), done.stdout


def test_a_pool_uses_the_app_it_was_given_for_task_names(cluster: Cluster) -> None:
    from producer.sending.callables import task_name
    from tasks import app as default_app

    @cluster.app.task(name="only.on.this.app", shared=False)
    def only_here(x: int) -> int:
        return x

    assert task_name("only.on.this.app", cluster.app) == "only.on.this.app"
    with pytest.raises(ValueError, match=r"only\.on\.this\.app"):
        task_name("only.on.this.app", default_app)


def test_no_key_is_left_after_a_pool_exits_with_collected_work(cluster: Cluster) -> None:
    client: redis.Redis = cluster.app.backend.client
    before = result_keys(client)
    with cluster.pool() as pool:
        sent = pool.map_async(square, range(10), chunksize=2)
        with cluster.pool() as other:
            assert other.attach(sent.id).get(60) == [x * x for x in range(10)]
    with Pool(app=cluster.app) as pool:
        pool.apply(square, (2,))
    assert result_keys(client) == before
