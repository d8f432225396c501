"""farpool advise: the cost model (pure) and the command on a real cluster."""

from __future__ import annotations

import re

import pytest
from conftest import Cluster
from helpers import run_cli

import producer
from producer.advice import plan
from tasks.contract import dumps
from tasks.hardware import caches


@pytest.mark.unit
def test_cheap_items_stay_local() -> None:
    advice = plan(item_seconds=1e-6, transfer_seconds=1e-6, round_trip=3e-3, processes=2, items=100_000)
    assert not advice.pays_off
    assert advice.chunksize == 50_000  # one chunk per process: never fewer items than that


@pytest.mark.unit
def test_costly_items_pay_off_with_chunks_of_about_twenty_round_trips() -> None:
    advice = plan(item_seconds=6e-3, transfer_seconds=1e-6, round_trip=3e-3, processes=2, items=4_000)
    assert advice.pays_off and advice.speedup == pytest.approx(2, rel=0.1)
    assert advice.chunksize == 10  # 20 × 3 ms of work


@pytest.mark.unit
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
    sending = r"sending: an item 1 B, its result \d+ B \(JSON, largest of the sample\); [\d.]+ µs"
    assert re.match(sending, lines[1])
    assert f"cluster: {cluster.settings.concurrency} processes" in lines[2]
    assert lines[-1].startswith("advice: distributing pays off (")
    assert lines[-1].endswith("the dominant cost is compute")


@pytest.mark.unit
def test_the_verdict_follows_the_printed_speedup() -> None:
    # 1.195x prints as 1.20x, which is worth a cluster: the verdict must say so too
    advice = plan(item_seconds=1.0, transfer_seconds=0.0, round_trip=0.0, processes=1, items=1)
    object.__setattr__(advice, "cluster_seconds", advice.serial_seconds / 1.195)
    assert f"{advice.speedup:.2f}" == "1.20" and advice.pays_off
    object.__setattr__(advice, "cluster_seconds", advice.serial_seconds / 1.194)
    assert f"{advice.speedup:.2f}" == "1.19" and not advice.pays_off


@pytest.mark.unit
def test_the_sample_stops_at_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import producer.advice

    clock = [0.0]
    monkeypatch.setattr(producer.advice.time, "perf_counter", lambda: clock[0])
    calls: list[float] = []

    def costly(seconds: float) -> None:  # each call takes `seconds` on the fake clock
        calls.append(seconds)
        clock[0] += seconds

    _, ran = producer.advice.time_locally(costly, [0.2] * 50, budget=0.3)
    assert ran == len(calls) == 2


def test_advise_says_in_its_help_that_the_task_runs_here() -> None:
    done = run_cli("advise", "--help")
    assert "TASK runs here, in this process" in done.stdout and "--budget" in done.stdout


@pytest.mark.parametrize(
    ("item_seconds", "transfer_seconds", "dominant"),
    [(1e-3, 1e-6, "compute"), (1e-7, 5e-5, "sending"), (1e-7, 1e-8, "round trips")],
)
@pytest.mark.unit
def test_the_verdict_names_the_dominant_cost(
    item_seconds: float, transfer_seconds: float, dominant: str
) -> None:
    advice = plan(item_seconds, transfer_seconds, round_trip=3e-3, processes=2, items=200)
    assert advice.dominant == dominant and advice.verdict.endswith(f"the dominant cost is {dominant}")
    if dominant == "sending":
        assert "sending items and results costs more than computing them" in advice.verdict


@pytest.mark.unit
def test_an_item_larger_than_the_l2_cache_is_said() -> None:
    fits = plan(1e-3, 1e-6, 3e-3, 2, 100, item_bytes=1000, result_bytes=10, l2_bytes=2**20)
    spills = plan(1e-3, 1e-6, 3e-3, 2, 100, item_bytes=1000, result_bytes=2**20 + 1, l2_bytes=2**20)
    unknown = plan(1e-3, 1e-6, 3e-3, 2, 100, item_bytes=2**30, l2_bytes=None)
    assert (fits.exceeds_l2, spills.exceeds_l2, unknown.exceeds_l2) == (False, True, False)


def test_the_python_api_weighs_sending(cluster: Cluster) -> None:
    """Items of 20 KB that cost nothing to compute: sending dominates, and the figures are typed."""
    sample = ["x" * 20_000, "y" * 10_000]
    with cluster.pool() as pool:
        advice = producer.advise("tasks.examples.identity", sample, items=1_000, budget=1.0, pool=pool)
    assert isinstance(advice, producer.Advice)
    assert advice.item_bytes == advice.result_bytes == len(dumps(sample[0]).encode()) - 2
    assert advice.l2_bytes == caches().get("L2")
    assert advice.dominant == "sending" and not advice.pays_off and not advice.exceeds_l2
    assert advice.transfer_seconds > 0 and advice.item_seconds > 0


def test_an_item_beyond_the_workers_l2_cache(cluster: Cluster) -> None:
    l2 = caches().get("L2")
    if not l2:
        pytest.skip("this machine does not say its L2 cache size")
    from producer.advice import measure, report

    with cluster.pool() as pool:
        advice, ran = measure("tasks.examples.identity", ["z" * (l2 + 1)], 100, 1.0, pool)
    assert advice.exceeds_l2 and advice.item_bytes > l2 == advice.l2_bytes
    lines = report("tasks.examples.identity", advice, ran)
    (said,) = [line for line in lines if line.startswith("working set: an item of ")]
    assert "exceeds the workers' L2 cache" in said
