"""farpool advise: the cost model (pure) and the command on a real cluster."""

from __future__ import annotations

import pytest
from conftest import Cluster
from helpers import run_cli

from producer.advise import plan


def test_cheap_items_stay_local() -> None:
    advice = plan(item_seconds=1e-6, transfer_seconds=1e-6, round_trip=3e-3, processes=2, items=100_000)
    assert not advice.pays_off
    assert advice.chunksize == 50_000  # one chunk per process: never fewer items than that


def test_costly_items_pay_off_with_chunks_of_about_twenty_round_trips() -> None:
    advice = plan(item_seconds=6e-3, transfer_seconds=1e-6, round_trip=3e-3, processes=2, items=4_000)
    assert advice.pays_off and advice.speedup == pytest.approx(2, rel=0.1)
    assert advice.chunksize == 10  # 20 × 3 ms of work


def test_speedup_grows_with_processes() -> None:
    speedups = [plan(0.03, 2e-6, 3e-3, processes, 1_000).speedup for processes in (1, 2, 8, 64)]
    assert speedups == sorted(speedups) and speedups[0] < 1 < speedups[-1]


def test_advise_on_the_cluster(cluster: Cluster) -> None:
    done = run_cli(
        "advise",
        "tasks.examples.burn",
        "--sample",
        "5",
        "--sample",
        "5",
        "--items",
        "400",
        env=cluster.env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tasks.examples.burn: ") and "ms per item" in lines[0]
    assert f"cluster: {cluster.settings.concurrency} processes" in lines[1]
    assert lines[-1].startswith("advice: distributing pays off (")


def test_the_verdict_follows_the_printed_speedup() -> None:
    # 1.195x prints as 1.20x, which is worth a cluster: the verdict must say so too
    advice = plan(item_seconds=1.0, transfer_seconds=0.0, round_trip=0.0, processes=1, items=1)
    object.__setattr__(advice, "cluster_seconds", advice.serial_seconds / 1.195)
    assert f"{advice.speedup:.2f}" == "1.20" and advice.pays_off
    object.__setattr__(advice, "cluster_seconds", advice.serial_seconds / 1.194)
    assert f"{advice.speedup:.2f}" == "1.19" and not advice.pays_off


def test_the_sample_stops_at_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import producer.advise

    clock = [0.0]
    monkeypatch.setattr(producer.advise.time, "perf_counter", lambda: clock[0])
    calls: list[float] = []

    def costly(seconds: float) -> None:  # each call takes `seconds` on the fake clock
        calls.append(seconds)
        clock[0] += seconds

    _, ran = producer.advise.time_locally(costly, [0.2] * 50, budget=0.3)
    assert ran == len(calls) == 2


def test_advise_says_in_its_help_that_the_task_runs_here() -> None:
    done = run_cli("advise", "--help")
    assert "TASK runs here, in this process" in done.stdout and "--budget" in done.stdout
