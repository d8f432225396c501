"""Flower on a farpool cluster: its API and its tasks page show the workers and the labelled chunks.

Flower is started exactly as `farpool up --flower` starts it (`celery -A tasks flower`, basic auth
on), on a free port, against the suite's cluster. It learns workers and tasks from Celery's
events, so every check polls until Flower has caught up (or fails after a deadline).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Cluster, free_port
from helpers import FARPOOL, fresh_machine_env, poll, stop_process

from config import load_settings, settings_env
from producer.local.children import kill_process_group
from producer.local.cluster import flower_command, flower_env

CHROMIUM = "/usr/bin/chromium"
# Flower 2's tasks page hides `args` by default; farpool's chunk labels live there.
START_TIMEOUT = 60.0


@dataclass
class Flower:
    url: str
    user: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, path: str, credentials: str | None = "default") -> tuple[int, str]:
        """(status, body) of GET `path`; credentials "user:password", None, or this Flower's own."""
        request = urllib.request.Request(self.url + path)
        if credentials == "default":
            credentials = f"{self.user}:{self.password}"
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(errors="replace")
        except OSError as error:  # not listening yet, or reset while starting
            return 0, str(error)

    def api(self, path: str) -> Any:
        status, body = self.request(path)
        assert status == 200, f"GET {path}: {status} {body[:300]}\n{self.log_tail()}"
        return json.loads(body)

    def log_tail(self) -> str:
        return "Flower's log:\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def flower(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flower]:
    user, password = "farpool", secrets.token_urlsafe(12)
    settings = load_settings(
        **{
            **cluster.settings.model_dump(),
            "flower_address": "127.0.0.1",
            "flower_port": free_port(),
            "flower_basic_auth": f"{user}:{password}",
        }
    )
    command = flower_command(settings)  # what `farpool up --flower` runs
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env={**cluster.env, **settings_env(settings), **flower_env(settings)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Flower(f"http://127.0.0.1:{settings.flower_port}", user, password, process, log)
    try:

        def answers() -> bool:
            assert process.poll() is None, f"Flower exited with {process.returncode}\n{server.log_tail()}"
            return server.request("/healthcheck", credentials=None) == (200, "OK")

        poll(answers, "Flower answering /healthcheck", START_TIMEOUT)
        yield server
    finally:
        stop_process(process)


def worker_name(cluster: Cluster) -> str:
    """The cluster worker's node name, as the worker reports it (`%h` expanded)."""
    replies = cluster.app.control.ping(timeout=1.0) or []
    prefix = cluster.local.node_name.split("@", 1)[0] + "@"
    names = [name for reply in replies for name in reply if name.startswith(prefix)]
    assert names, f"the cluster's worker {prefix}… does not answer a ping: {replies}"
    return names[0]


def wait_until_flower_sees_worker(flower: Flower, name: str) -> None:
    """Flower has received the worker's heartbeat events: from now on it sees every task event."""
    poll(lambda: flower.api("/api/workers?status=1").get(name), f"Flower receiving {name}'s events")


def wait_for_chunk_labels(flower: Flower, worker: str, labels: set[str]) -> dict[str, dict[str, Any]]:
    """Flower's successful chunk tasks on `worker` whose args are `labels`, once all are there."""

    def chunks() -> dict[str, dict[str, Any]] | None:
        query = urllib.parse.urlencode(
            {"workername": worker, "taskname": "farpool.map_chunk", "state": "SUCCESS"}
        )
        tasks = flower.api(f"/api/tasks?{query}")
        found = {task["args"]: task for task in tasks.values() if task.get("args") in labels}
        return found if set(found) == labels else None

    return poll(chunks, f"Flower listing the chunk tasks {sorted(labels)}")


def test_flower_logs_the_broker_url_as_written(cluster: Cluster, flower: Flower) -> None:
    """Issue 23: Flower logged `Broker: tasks.transport:Transport://:**@127.0.0.1:...`."""
    url = cluster.settings.broker_url
    poll(lambda: "Broker: " in flower.log.read_text(errors="replace"), "Flower to log its broker")
    broker = [line for line in flower.log.read_text(errors="replace").splitlines() if "Broker: " in line]
    assert broker and broker[0].endswith(f"Broker: {url}"), broker


def test_flower_refuses_requests_without_the_right_credentials(flower: Flower) -> None:
    for path in ("/api/workers", "/api/tasks", "/tasks"):
        assert flower.request(path, credentials=None)[0] == 401, path
        assert flower.request(path, credentials=f"{flower.user}:wrong")[0] == 401, path
        assert flower.request(path)[0] == 200, path


def test_flower_api_lists_the_worker_and_the_labelled_chunks_of_a_map(
    cluster: Cluster, flower: Flower
) -> None:
    name = worker_name(cluster)
    wait_until_flower_sees_worker(flower, name)

    with cluster.pool() as pool:
        sent = pool.map_async("tasks.examples.square", range(21), chunksize=10)
        assert sent.get(60) == [x * x for x in range(21)]

    workers = poll(
        lambda: (found := flower.api("/api/workers?refresh=1")).get(name) and found,
        f"/api/workers?refresh=1 listing {name}",
    )
    assert workers[name]["stats"]["pool"]["max-concurrency"] == cluster.settings.concurrency
    assert [queue["name"] for queue in workers[name]["active_queues"]] == [cluster.settings.queue]

    # each names its map by the start of the id `farpool submit` prints; the last one has 1 item
    labels = {
        f"square × {n} [map {sent.id[:8]}, chunk {i}/3]"
        for i, n in ((1, "10 items"), (2, "10 items"), (3, "1 item"))
    }
    chunks = wait_for_chunk_labels(flower, name, labels)
    for task in chunks.values():
        assert task["name"] == "farpool.map_chunk"
        assert task["worker"] == name
        assert task["kwargs"].startswith("{'task': 'tasks.examples.square', 'start': ")
    results = sorted(json.loads(task["result"]) for task in chunks.values())
    assert results == [[x * x for x in range(start, min(start + 10, 21))] for start in (0, 10, 20)]


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throwaway profile; its whole process group is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="farpool-chromium-", ignore_cleanup_errors=True) as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            kill_process_group(process)
            process.communicate()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"needs Debian's chromium ({CHROMIUM})")
def test_flower_tasks_page_renders_the_chunk_labels_in_a_browser(cluster: Cluster, flower: Flower) -> None:
    name = worker_name(cluster)
    wait_until_flower_sees_worker(flower, name)
    with cluster.pool() as pool:
        sent = pool.map_async("tasks.examples.square", range(24), chunksize=6)
        assert sent.get(60) == [x * x for x in range(24)]
    labels = {f"square × 6 items [map {sent.id[:8]}, chunk {index}/4]" for index in (1, 2, 3, 4)}
    wait_for_chunk_labels(flower, name, labels)  # Flower has them: the page's table must show them

    page = flower.url.replace("http://", f"http://{flower.user}:{flower.password}@") + "/tasks"
    done = chromium("--virtual-time-budget=5000", "--dump-dom", page)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="tasks-table"' in dom, dom[:2000]
    missing = sorted(label for label in labels if label not in dom)
    assert not missing, f"labels not in the rendered tasks table: {missing}\n{dom[-3000:]}"
    assert name in dom  # the worker column

    screenshot = os.environ.get("FARPOOL_TEST_SCREENSHOT")
    if screenshot:  # regenerate docs/flower-tasks.png: FARPOOL_TEST_SCREENSHOT=docs/flower-tasks.png
        shot = chromium(
            "--virtual-time-budget=5000",
            "--hide-scrollbars",
            "--window-size=1400,800",
            f"--screenshot={Path(screenshot).resolve()}",
            page,
        )
        assert shot.returncode == 0, shot.stderr[-2000:]


def test_farpool_up_flower_first_look_at_the_worker_succeeds_without_a_warning(tmp_path: Path) -> None:
    """Issue 23: `farpool up --flower` logged four `Inspect method ... failed` warnings.

    Flower inspects the workers once as it starts (stats, active_queues, registered, conf; 1 s
    each). Started beside a worker still starting (mingle, no control consumer yet), nobody
    answered: four warnings, and no worker in `/api/workers` until something asked again.
    """
    user, password = "farpool", secrets.token_urlsafe(12)
    port = free_port()
    env = fresh_machine_env(
        str(tmp_path / "data"),
        FARPOOL_FLOWER_PORT=str(port),
        FARPOOL_FLOWER_BASIC_AUTH=f"{user}:{password}",
    )
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*FARPOOL, "up", "--flower"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    flower = Flower(f"http://127.0.0.1:{port}", user, password, process, log)
    try:

        def first_look() -> str | None:
            """The outcome, "warned" or "inspected", once Flower's start-up inspection has ended."""
            assert process.poll() is None, f"farpool up exited with {process.returncode}\n{flower.log_tail()}"
            if "Inspect method" in log.read_text(errors="replace"):
                return "warned"
            status, body = flower.request("/api/workers")  # what the start-up inspection found
            found = json.loads(body) if status == 200 else {}
            return "inspected" if any("stats" in info for info in found.values()) else None

        outcome = poll(first_look, "Flower's start-up inspection of the worker", START_TIMEOUT)
        text = log.read_text(errors="replace")
        warnings = [line for line in text.splitlines() if "Inspect method" in line or "[W " in line]
        assert (outcome, warnings) == ("inspected", []), flower.log_tail()
    finally:
        stop_process(process)
