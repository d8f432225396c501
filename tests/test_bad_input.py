"""Bad input gets a clear answer: refused messages, refused tasks, unencodable results, bad CLI input.

Messages are pushed straight onto the queue of a cluster of this module's own (a worker that
had to refuse something must not be the suite's shared one); each check then proves that the
worker logged the refusal, never ran or unpickled the message, and keeps serving.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import NotRegistered
from conftest import Cluster
from faults_support import FaultCluster, Unpickles, fault_cluster
from helpers import poll, run_cli, stored

from producer import Pool
from tasks.chunks import RefusedTask
from tasks.inflight import held_messages


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with fault_cluster(tmp_path_factory.mktemp("bad-input")) as cluster:
        yield cluster


def drained(cluster: FaultCluster) -> bool:
    """Nothing waits in the queue and nothing is taken but unacknowledged."""
    client = cluster.app.backend.client
    return not client.llen(cluster.settings.queue) and not held_messages(client)


def log_entry(cluster: FaultCluster, *needles: str) -> str:
    """The worker's log record (first line and what follows it) mentioning all `needles`."""
    records = cluster.log_text().split("\n[")
    for record in records:
        if all(needle in record for needle in needles):
            return record
    return ""


def assert_still_serving(cluster: FaultCluster) -> None:
    with Pool(app=cluster.app) as pool:
        assert pool.map("tasks.examples.square", range(10), chunksize=3) == [x * x for x in range(10)]


def test_a_pickle_message_is_refused_logged_never_unpickled_or_run(own: FaultCluster, tmp_path: Path) -> None:
    unpickled, ran = tmp_path / "unpickled", tmp_path / "ran"
    own.app.send_task(
        "usertasks_faults.touch",
        args=[str(ran), Unpickles(str(unpickled))],
        serializer="pickle",
        queue=own.settings.queue,
    )
    record = poll(
        lambda: log_entry(own, "untrusted content of type pickle", str(unpickled)),
        "the worker to log that it refused the pickle message",
    )
    assert "ERROR" in record.splitlines()[0]
    poll(lambda: drained(own), "the refused message to leave the queue (not sit unacked)")
    assert not unpickled.exists(), "the worker unpickled the message"
    assert not ran.exists(), "the worker ran the message"
    assert_still_serving(own)


def test_a_message_for_an_unregistered_task_is_refused_logged_and_answered(own: FaultCluster) -> None:
    name = f"no.such.task_{uuid.uuid4().hex[:8]}"
    sent = own.app.send_task(name, args=[1], queue=own.settings.queue)
    poll(lambda: stored(own.app, sent.id), "the refusal to be stored")
    with Pool(app=own.app) as pool, pytest.raises(NotRegistered, match=name):
        pool.attach(sent.id).get(30)
    record = log_entry(own, f"Received unregistered task of type '{name}'")
    assert record and "ERROR" in record.splitlines()[0]
    poll(lambda: drained(own), "the refused message to leave the queue")
    assert_still_serving(own)


@pytest.mark.parametrize("executor", ["farpool.map_chunk", "farpool.starmap_chunk"])
@pytest.mark.parametrize("name", ["celery.backend_cleanup", "farpool.gather", "no.such.task", "os.system"])
def test_the_chunk_executor_refuses_builtins_and_unregistered_tasks(
    cluster: Cluster, module_pool: Pool, executor: str, name: str
) -> None:
    items = [["touch /tmp/never"]] if executor == "farpool.starmap_chunk" else ["touch /tmp/never"]
    sent = cluster.app.send_task(executor, args=(name, items, 0))
    poll(lambda: stored(cluster.app, sent.id), "the refusal to be stored")
    with pytest.raises(RefusedTask, match=name.replace(".", r"\.")) as refused:
        module_pool.attach(sent.id).get(30)
    if name == "no.such.task":  # the refusal names the worker that refused
        worker = cluster.local.node_name.replace("%h", socket.gethostname())
        assert f"is not registered on worker {worker} " in str(refused.value), refused.value


def test_map_of_a_result_json_cannot_carry_names_task_and_item(module_pool: Pool) -> None:
    with pytest.raises(TypeError, match=r"tasks\.examples\.unsendable.* item 3"):
        module_pool.map("tasks.examples.unsendable", [0, 1, 1, 7], chunksize=2)


def test_apply_of_a_result_json_cannot_carry_names_the_task(module_pool: Pool) -> None:
    """Without the chunk executor, the error should still say which task returned what."""
    with pytest.raises(TypeError, match=r"tasks\.examples\.unsendable.*object.*JSON"):
        module_pool.apply("tasks.examples.unsendable", (2,))


# -- the command line ---------------------------------------------------------------------------

BAD_INPUT = {
    "range-not-numbers": (["map", "tasks.examples.square", "--range", "1:x"], "--range"),
    "range-one-number": (["map", "tasks.examples.square", "--range", "5"], "--range"),
    "range-four-parts": (["map", "tasks.examples.square", "--range", "1:2:3:4"], "--range"),
    "range-step-zero": (["map", "tasks.examples.square", "--range", "1:9:0"], "--range"),
    "range-and-items": (["map", "tasks.examples.square", "1", "--range", "0:3"], "not both"),
    "bad-json-item": (["map", "tasks.examples.square", "1", "{nope"], "not JSON"),
    "missing-items": (["map", "tasks.examples.square"], "no items"),
    "missing-task": (["map"], "TASK"),
    "bad-chunksize": (["map", "tasks.examples.square", "1", "--chunksize", "0"], "chunksize"),
    "starmap-bad-json": (["starmap", "tasks.examples.add", "[1,"], "not JSON"),
    "apply-bad-json": (["apply", "tasks.examples.add", "1", "two"], "not JSON"),
    "apply-bad-kwargs": (["apply", "tasks.examples.add", "--kwargs", "[1]"], "--kwargs"),
    "unknown-command": (["mapp", "tasks.examples.square", "1"], "mapp"),
    "unknown-task-map": (["map", "no.such.task", "1", "2"], "no.such.task"),
    "unknown-task-apply": (["apply", "no.such.task", "1"], "no.such.task"),
    "internal-task": (["map", "celery.backend_cleanup", "1"], "celery.backend_cleanup"),
    "unencodable-kwargs": (["apply", "tasks.examples.add", "--kwargs", '{"a": NaN_}'], "not JSON"),
}


@pytest.mark.parametrize(("argv", "mentions"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_malformed_cli_input_is_one_line_and_exit_2(cluster: Cluster, argv: list[str], mentions: str) -> None:
    done = run_cli(*argv, env=cluster.env, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("farpool: ") and mentions in lines[0], lines[0]
    assert done.stdout == ""


PARSED_BEFORE_CONNECTING = {
    "map": ["map", "tasks.examples.square", "{nope"],
    "starmap": ["starmap", "tasks.examples.add", "[1,"],
    "submit": ["submit", "tasks.examples.square", "--range", "1:x"],
    "apply": ["apply", "tasks.examples.add", "1", "two"],
}


@pytest.mark.parametrize("argv", PARSED_BEFORE_CONNECTING.values(), ids=PARSED_BEFORE_CONNECTING.keys())
def test_usage_errors_come_before_any_broker_is_needed(argv: list[str]) -> None:
    """A typo is reported as a typo, even with no broker reachable (no 'broker down' first)."""
    env = {**os.environ, "FARPOOL_BROKER_URL": "redis://127.0.0.1:1/0", "FARPOOL_EMBEDDED_BROKER": "never"}
    done = run_cli(*argv, env=env, timeout=60)
    assert done.returncode == 2
    assert "no broker" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


class Raw:
    """A message part written as given (kombu's JSON calls __json__): what a hostile sender could
    put on the queue instead of farpool's own encoding."""

    def __init__(self, mapping: dict[str, object]) -> None:
        self.mapping = mapping

    def __json__(self) -> dict[str, object]:
        return self.mapping


HOSTILE_ARRAYS = {
    "object dtype": {"dtype": "|O", "shape": [2], "n": 16},
    "wrong byte count": {"dtype": "<f8", "shape": [2], "n": 12},
    "absurd shape": {"dtype": "<f8", "shape": [10**12], "n": 8 * 10**12},
    "bytes shorter than said": {"dtype": "<f8", "shape": [4], "n": 32},
    "unknown dtype": {"dtype": "q9z", "shape": [1], "n": 1},
}


@pytest.mark.parametrize("fields", HOSTILE_ARRAYS.values(), ids=HOSTILE_ARRAYS.keys())
def test_a_hostile_array_on_the_queue_is_refused_and_answered(
    own: FaultCluster, fields: dict[str, object]
) -> None:
    from tasks.contract import MAP_CHUNK, chunk_arguments

    client = own.app.backend.client
    key = f"farpool-data-hostile-{uuid.uuid4().hex}"
    client.hset(key, "a0", b"\x00" * 8)  # 8 bytes, whatever the message claims
    found = {"__farpool__": "ndarray", "order": "C", "key": key, "field": "a0", **fields}
    arguments = chunk_arguments("usertasks:identity", [Raw(found)], 0)
    sent = own.app.send_task(MAP_CHUNK, kwargs=arguments, queue=own.settings.queue)
    poll(lambda: stored(own.app, sent.id), "the refusal to be stored")
    with Pool(app=own.app) as pool, pytest.raises(RefusedTask):
        pool.attach(sent.id).get(30)
    client.delete(key)
    poll(lambda: drained(own), "the refused message to leave the queue")
    assert_still_serving(own)
