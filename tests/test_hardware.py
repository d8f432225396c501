"""Each worker announces its hardware (tasks/hardware.py); `farpool cluster` shows it per host."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from conftest import Cluster
from helpers import poll, run_cli, stop_process

from producer.local.cluster import WorkerInfo, announced_workers
from producer.packages import FARPOOL_ROOT
from tasks.hardware import caches, cpu_model, size_in_bytes

PHYSICAL = psutil.cpu_count(logical=False) or psutil.cpu_count()


def test_cache_sizes_as_the_kernel_writes_them() -> None:
    assert [size_in_bytes(text) for text in ("32K\n", "1024K", "32M", "512", "x")] == [
        32768,
        2**20,
        32 * 2**20,
        512,
        None,
    ]


def test_caches_by_level_and_type(tmp_path: Path) -> None:
    found = [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K")]
    found.append(("3", "Unified", "36M"))
    for index, (level, kind, size) in enumerate(found):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(value + "\n")
    assert caches(tmp_path) == {"L1d": 48 * 2**10, "L1i": 32 * 2**10, "L2": 2 * 2**20, "L3": 36 * 2**20}
    assert caches(tmp_path / "absent") == {}


def test_cpu_model_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) 8375C\n")
    assert cpu_model(cpuinfo) == "Intel(R) Xeon(R) 8375C"
    assert cpu_model(tmp_path / "absent") == ""


def test_farpool_cluster_shows_each_workers_hardware(cluster: Cluster) -> None:
    done = run_cli("cluster", "--json", env=cluster.env)
    assert done.returncode == 0, done.stderr
    (worker,) = [w for w in json.loads(done.stdout)["workers"] if cluster.settings.queue in w["queues"]]
    assert worker["physical_cores"] == PHYSICAL and worker["cores"] == psutil.cpu_count()
    assert worker["cpu_model"] == cpu_model() and worker["caches"] == caches()
    assert worker["memory_total"] == psutil.virtual_memory().total
    assert worker["oversubscribed"] is (cluster.settings.concurrency > PHYSICAL)
    text = run_cli("cluster", env=cluster.env).stdout
    assert "cores phys/logical" in text and "cache L1d/L2/L3" in text
    line = next(line for line in text.splitlines() if line.startswith(worker["name"]))
    assert f"{PHYSICAL}/{psutil.cpu_count()}" in line and (worker["cpu_model"] or "?") in line


@contextmanager
def hand_started_worker(cluster: Cluster, queue: str, concurrency: str) -> Iterator[None]:
    """`celery -A tasks worker` as a user starts it, FARPOOL_CONCURRENCY as given, on its own queue."""
    env = {**cluster.env, "FARPOOL_QUEUE": queue, "FARPOOL_CONCURRENCY": concurrency}
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "WARNING"]
    command += ["--hostname", f"{concurrency}-{uuid.uuid4().hex[:6]}@%h"]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=FARPOOL_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        stop_process(process)


@pytest.mark.integration
def test_concurrency_physical_and_the_note_on_more_processes_than_cores(cluster: Cluster) -> None:
    queue = f"farpool-test-hw-{uuid.uuid4().hex[:8]}"

    def workers(count: int) -> list[WorkerInfo] | None:
        found = announced_workers(cluster.app, queue)
        return found if len(found) == count else None

    with hand_started_worker(cluster, queue, "physical"):
        (physical,) = poll(lambda: workers(1), "the worker started with FARPOOL_CONCURRENCY=physical")
        assert physical.processes == PHYSICAL and not physical.oversubscribed
        with hand_started_worker(cluster, queue, str(PHYSICAL + 1)):
            found = poll(lambda: workers(2), "the second worker")
            (more,) = [worker for worker in found if worker.name != physical.name]
            assert more.processes == PHYSICAL + 1 and more.oversubscribed
            text = run_cli("cluster", env={**cluster.env, "FARPOOL_QUEUE": queue}).stdout
    notes = [line for line in text.splitlines() if line.startswith("note: ")]
    assert notes == [
        f"note: {more.name} runs {PHYSICAL + 1} processes on {PHYSICAL} physical cores"
        + ("" if more.cores == PHYSICAL else f" ({more.cores} hardware threads)")
        + ": CPU-bound tasks share cores; FARPOOL_CONCURRENCY=physical gives one per core"
    ]
