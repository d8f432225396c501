"""The producer beyond parity: laziness, asyncio, re-attaching, cleanup, errors, Process."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Cluster
from helpers import result_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import producer
from producer import Pool, Process
from tasks.examples import fail_on, nap, square

json_items = st.lists(st.integers(min_value=-(10**9), max_value=10**9), max_size=60)
hypothesis_settings = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@hypothesis_settings
@given(items=json_items, chunksize=st.integers(min_value=1, max_value=25))
def test_map_equals_builtin_map(module_pool: Pool, items: list[int], chunksize: int) -> None:
    assert module_pool.map(square, items, chunksize) == list(map(square.run, items))


@hypothesis_settings
@given(items=json_items, chunksize=st.one_of(st.none(), st.integers(min_value=1, max_value=25)))
def test_imap_unordered_yields_the_same_multiset(
    module_pool: Pool, items: list[int], chunksize: int | None
) -> None:
    got = Counter(module_pool.imap_unordered(square, items, chunksize))
    assert got == Counter(map(square.run, items))


def test_imap_reads_an_endless_generator_lazily_and_stops(pool: Pool) -> None:
    pulled = itertools.count()

    def endless() -> Iterator[int]:
        for n in itertools.count():
            next(pulled)
            yield n

    results = pool.imap(square, endless(), chunksize=5)
    first = [next(results) for _ in range(40)]
    assert first == [n * n for n in range(40)]
    window = 2 * pool._processes * 5
    assert next(pulled) <= 40 + window + 1  # never more than the window ahead
    results.close()
    assert next(pulled) <= 40 + window + 2  # closing stops submitting


def test_imap_adapts_its_chunksize_when_none_is_given(module_pool: Pool) -> None:
    results = module_pool.imap(square, range(3000))
    assert list(results) == [n * n for n in range(3000)]
    assert results._sizer is not None and results._sizer.size > 1


def test_imap_next_with_timeout(pool: Pool) -> None:
    results = pool.imap(nap, [1.0, 0.0])
    with pytest.raises(producer.TimeoutError):
        results.next(timeout=0.05)
    assert results.next(timeout=60) == 1.0


def test_many_maps_awaited_at_once_on_one_loop(pool: Pool) -> None:
    async def main() -> list[Any]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        maps = [pool.map_async(square, range(n, n + 20), 4) for n in range(0, 100, 20)]
        applied = pool.apply_async(nap, (0.3,))
        results = await asyncio.gather(*maps, applied)
        tick_task.cancel()
        assert ticks > 1, "the loop was blocked while awaiting"
        return results

    results = asyncio.run(main())
    assert results[:-1] == [[x * x for x in range(n, n + 20)] for n in range(0, 100, 20)]
    assert results[-1] == 0.3


def test_await_raises_the_tasks_exception(pool: Pool) -> None:
    async def main() -> None:
        await pool.map_async(fail_on, range(6))

    with pytest.raises(ValueError, match="item 3 is bad"):
        asyncio.run(main())


def test_result_reattaches_from_another_process(cluster: Cluster) -> None:
    with cluster.pool() as pool:
        submitted = pool.map_async(square, range(30), 7)
        map_id = submitted.id
        pool.detach()
    code = f"import producer; print(producer.result({map_id!r}).get(60))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([x * x for x in range(30)])
    assert not cluster.app.backend.client.exists(f"farpool-call-{map_id}")


def test_no_result_keys_remain_after_collection(pool: Pool, cluster: Cluster) -> None:
    client = cluster.app.backend.client
    before = result_keys(client)
    pool.map(square, range(500), 10)
    pool.map_async(square, range(100), 10).get(60)
    pool.apply(square, (3,))
    list(pool.imap_unordered(square, range(200)))
    assert result_keys(client) == before
    assert not list(client.scan_iter(match=b"farpool-call-*"))


def test_failure_revokes_the_remaining_chunks(pool: Pool, cluster: Cluster) -> None:
    counter = f"ran-{uuid.uuid4().hex}"
    client = cluster.app.backend.client
    items = [[-1, counter]] + [[0.2, counter]] * 30
    with pytest.raises(ValueError, match="asked to fail"):
        pool.starmap("usertasks.counted_nap", items, 1)
    wait_until_idle(cluster)
    ran = int(client.get(counter) or 0)
    client.delete(counter)
    assert 1 <= ran < 10, f"{ran} of 31 chunks ran after the first failed"


def wait_until_idle(cluster: Cluster, timeout: float = 60) -> None:
    """Poll until the queue is empty and no worker has a task running."""
    inspect = cluster.app.control.inspect(timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = cluster.app.backend.client.llen(cluster.settings.queue)
        active = inspect.active() or {}
        if not queued and not any(active.values()):
            return
    pytest.fail("the cluster did not become idle")


def test_a_users_own_task_module_through_farpool_include(module_pool: Pool) -> None:
    assert module_pool.map("usertasks.cube", range(6)) == [0, 1, 8, 27, 64, 125]


def test_something_not_callable_is_a_type_error(module_pool: Pool) -> None:
    with pytest.raises(TypeError, match="not callable: pass a function, a Celery task or a task's name"):
        module_pool.map(object(), [1, 2])


@pytest.mark.parametrize("name", ["no.such.task", "celery.backend_cleanup", "farpool.map_chunk"])
def test_unknown_or_internal_task_names_are_value_errors(module_pool: Pool, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        module_pool.apply(name, (1,))


def test_an_item_json_cannot_carry_is_a_type_error_naming_its_index(
    module_pool: Pool, cluster: Cluster
) -> None:
    client = cluster.app.backend.client
    depth = client.llen(cluster.settings.queue)
    with pytest.raises(TypeError, match=r"item 2 .*object"):
        module_pool.map(square, [1, 2, object(), 4], 1)
    with pytest.raises(TypeError, match=r"item 1 .*object"):
        module_pool.apply(square, (1, object()))
    assert client.llen(cluster.settings.queue) == depth  # nothing was enqueued


def test_a_result_json_cannot_carry_names_the_task_and_item(module_pool: Pool) -> None:
    with pytest.raises(TypeError, match=r"tasks.examples.unsendable.* item 1"):
        module_pool.map("tasks.examples.unsendable", [1, 2], 2)


def test_no_worker_online_is_a_clear_error(tmp_path: Any) -> None:
    from conftest import close_app, cluster_settings, free_port

    from producer.local.embedded import EmbeddedServer, server_address
    from tasks import create_app

    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    with EmbeddedServer(address, tmp_path) as server:
        app = create_app(cluster_settings(server.url, tmp_path))
        with pytest.raises(producer.NoWorkersError, match="celery -A tasks worker"):
            Pool(app=app)
        close_app(app)


def test_process_runs_a_task_on_the_cluster(cluster: Cluster, monkeypatch: Any) -> None:
    import producer.default_pool

    shared = cluster.pool()
    monkeypatch.setattr(producer.default_pool, "_pool", shared)
    ok, bad = Process(target=square, args=(7,)), Process(target=fail_on, args=(3,))
    assert ok.exitcode is None and not ok.is_alive()
    ok.start()
    bad.start()
    ok.join(60)
    bad.join(60)
    assert (ok.exitcode, bad.exitcode) == (0, 1)
    assert ok.result == 49 and not ok.is_alive()
    shared.terminate()


def test_progress_bar_counts_items(pool: Pool, capsys: pytest.CaptureFixture[str]) -> None:
    assert pool.map(square, range(40), 10, progress=True) == [x * x for x in range(40)]
    assert "40/40" in capsys.readouterr().err
    assert list(pool.imap(square, range(25), progress=True)) == [x * x for x in range(25)]
    assert "25" in capsys.readouterr().err


def test_processes_sets_the_default_chunksize(cluster: Cluster) -> None:
    with cluster.pool(processes=3) as pool:
        result = pool._calls.map(square, range(100), None, False, False, None)
        assert len(result._sent.chunk_ids) == 12  # ceil(100 / (4 × 3)) = 9 per chunk
        assert result.get(60) == [x * x for x in range(100)]
    with cluster.pool() as pool:
        assert pool.cluster_processes == cluster.settings.concurrency


def test_per_call_timeout_ends_a_hanging_item_with_a_timeout_error(pool: Pool) -> None:
    with pytest.raises(producer.TimeoutError, match=r"tasks\.examples\.nap.*item 1"):
        pool.map(nap, [0, 30, 0], chunksize=3, timeout=1)
    with pytest.raises(producer.TimeoutError, match=r"tasks\.examples\.nap"):
        pool.apply(nap, (30,), timeout=1)
    with pytest.raises(producer.TimeoutError, match=r"tasks\.examples\.nap"):
        list(pool.imap_unordered(nap, [0, 30], chunksize=1, timeout=1))
    assert pool.map(nap, [0.1, 0.1], timeout=5) == [0.1, 0.1]


@pytest.mark.parametrize("timeout", [0, -1, "5"])
def test_bad_timeout_is_a_value_error(module_pool: Pool, timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        module_pool.map(square, [1], timeout=timeout)
