"""NumPy arrays and scalars through every call, as multiprocessing.Pool carries them (issue 19).

Each test runs twice: with the arrays' bytes in memory files shared on this machine (the
default when every worker is local) and through Redis (`FARPOOL_SHARED_MEMORY=never`, as for
workers on other hosts).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import userarrays
import usertasks
from conftest import Cluster, close_app
from helpers import poll

from producer import HandleDeleted, Pool, Process
from producer.local.cluster import descendant_pids
from tasks import create_app

ARRAYS: list[Any] = [
    np.arange(10.0),
    np.array(True),
    np.array(7, dtype=np.int16),
    np.zeros(0),
    np.zeros((2, 0, 3), dtype=np.uint8),
    np.arange(12, dtype=">i4").reshape(3, 4),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.arange(20)[::3],
    np.arange(24).reshape(4, 6)[::2, 1::2],
    *[np.arange(5, dtype=kind) for kind in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")],
    *[np.linspace(0, 1, 5, dtype=kind) for kind in ("f2", "f4", "f8", ">f8")],
    np.array([1 + 2j, np.nan], dtype=np.complex64),
    np.array([1 + 2j, -3j], dtype=np.complex128),
    np.array(["2026-12-02T10:00", "NaT"], dtype="datetime64[ns]"),
    np.array(["2026-12-02"], dtype="datetime64[D]"),
    np.array([5, -1], dtype="timedelta64[ms]"),
    np.array([b"ab\x00", b"xyz"], dtype="S5"),
    np.array(["hé", "日本"], dtype="U3"),
    np.array([(1, (2.5, 3.5), "a")], dtype=[("a", "<i4"), ("b", ">f8", (2,)), ("c", "U2")]),
    np.zeros(2, dtype=[("outer", [("x", "u1"), ("y", "<f4")]), ("z", "?")]),
    np.zeros(3, dtype=np.dtype({"names": ["p", "q"], "formats": ["u1", "<i8"], "offsets": [0, 8]})),
]
SCALARS: list[Any] = [
    np.float32(1.5),
    np.float64(2.5),
    np.float64("nan"),
    np.float16(0.25),
    np.int64(-3),
    np.int8(-1),
    np.uint64(2**64 - 1),
    np.bool_(True),
    np.datetime64("2026-12-02T10:00"),
    np.timedelta64(5, "s"),
    np.complex64(1 + 2j),
    np.str_("hé"),
    np.bytes_(b"\x00x"),
    np.longdouble(1.25),
    np.zeros(1, dtype=[("a", "<i4"), ("b", "<f8")])[0],
]


def same(left: Any, right: Any) -> bool:
    """Equal dtype, shape, memory order and values: bytes (NaN equal to NaN), or for a structured
    dtype its fields' values (its padding bytes are anybody's)."""
    values_equal = (
        repr(left.tolist()) == repr(right.tolist())
        if left.dtype.fields
        else np.ascontiguousarray(left).tobytes() == np.ascontiguousarray(right).tobytes()
    )
    return (
        type(left) is type(right)
        and left.dtype == right.dtype
        and left.shape == right.shape
        and left.flags.f_contiguous == right.flags.f_contiguous
        and values_equal
    )


@pytest.fixture(scope="module", params=["shared-memory", "redis"])
def array_pool(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Pool]:
    if request.param == "shared-memory":
        with cluster.pool() as pool:
            yield pool
        return
    app = create_app(cluster.settings.model_copy(update={"shared_memory": "never"}))
    try:
        with Pool(app=app) as pool:
            yield pool
    finally:
        close_app(app)


@pytest.fixture(scope="module")
def stdlib_pool() -> Iterator[Any]:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        yield pool


def data_keys(pool: Pool) -> list[bytes]:
    return list(pool._ledger.client.scan_iter(match=b"farpool-data-*", count=1000))


def test_every_kind_of_array_comes_back_as_it_was_sent(array_pool: Pool, stdlib_pool: Any) -> None:
    ours = array_pool.map(usertasks.identity, ARRAYS, chunksize=4)
    for sent, mine in zip(ARRAYS, ours, strict=True):
        assert same(mine, np.array(sent, order="K")), (sent, mine)
    # NumPy's pickle (protocol 4, multiprocessing's) turns a big-endian array native: compare the rest
    native = [array for array in ARRAYS if array.dtype.byteorder != ">" and "'>" not in str(array.dtype)]
    assert array_pool.map(userarrays.described, native) == stdlib_pool.map(userarrays.described, native)


def test_numpy_scalars_keep_their_types(array_pool: Pool, stdlib_pool: Any) -> None:
    assert array_pool.map(userarrays.described, SCALARS) == stdlib_pool.map(userarrays.described, SCALARS)
    back = array_pool.map(usertasks.identity, SCALARS)
    assert [type(value) for value in back] == [type(value) for value in SCALARS]
    assert [repr(value) for value in back] == [repr(value) for value in SCALARS]


def test_mapping_over_an_array_and_over_a_matrixs_rows(array_pool: Pool, stdlib_pool: Any) -> None:
    assert array_pool.map(usertasks.identity, np.arange(5)) == stdlib_pool.map(
        usertasks.identity, np.arange(5)
    )
    matrix = np.arange(12.0).reshape(3, 4)
    assert array_pool.map(userarrays.total, matrix) == [6.0, 22.0, 38.0]
    assert array_pool.map(userarrays.described, matrix.T) == stdlib_pool.map(userarrays.described, matrix.T)


def test_arrays_travel_in_every_call(array_pool: Pool) -> None:
    one, two = np.arange(3.0), np.ones(3)
    expected = (one + two) * 2
    assert (array_pool.apply(userarrays.pair_sum, (one,), {"right": two, "scale": 2.0}) == expected).all()
    assert (array_pool.starmap(userarrays.pair_sum, [(one, two, 2.0)])[0] == expected).all()
    value = {"rows": [one, two], "pair": (np.int32(4), two)}
    back = array_pool.apply(userarrays.nested, (value,))
    assert same(back["rows"][0], one * 2) and type(back["pair"][0]) is np.int32
    assert same(back["pair"][1], two + 1) and type(back["pair"]) is tuple
    in_order = list(array_pool.imap(usertasks.identity, [one, two]))
    assert same(in_order[0], one) and same(in_order[1], two)
    unordered = array_pool.imap_unordered(userarrays.total, [one, two], chunksize=1)
    assert sorted(unordered) == [3.0, 3.0]
    received: list[Any] = []
    array_pool.apply_async(usertasks.identity, (one,), callback=received.append).get(60)
    array_pool.map_async(usertasks.identity, [two, one], callback=received.append).get(60)
    assert same(received[0], one) and same(received[1][0], two) and same(received[1][1], one)
    process = Process(target=userarrays.pair_sum, args=(one, two))
    process._result = array_pool.apply_async(process._target, process._args)
    process.join(60)
    assert process.exitcode == 0 and same(process.result, one + two)


def test_a_task_may_write_into_its_argument_and_the_producers_array_stays(array_pool: Pool) -> None:
    sent = np.arange(6.0)
    back = array_pool.map(userarrays.doubled_in_place, [sent, sent[::2]])
    assert same(back[0], np.arange(6.0) * 2) and same(back[1], np.arange(0.0, 6.0, 2) * 2)
    assert same(sent, np.arange(6.0))
    back[0] += 1  # a result is the producer's own, writable


def test_an_array_of_objects_is_refused_before_anything_is_sent(array_pool: Pool) -> None:
    before = data_keys(array_pool)
    with pytest.raises(TypeError, match=r"item 1 is a NumPy array of Python objects"):
        array_pool.map(usertasks.identity, [np.zeros(2), np.array([object()])])
    with pytest.raises(TypeError, match="Python objects"):
        array_pool.apply(usertasks.identity, (np.array([{}], dtype=object),))
    assert data_keys(array_pool) == before


def test_a_value_put_once_reaches_every_task_read_once_per_process(array_pool: Pool) -> None:
    big = np.random.default_rng(7).random(100_000)
    handle = array_pool.put(big)
    seen = array_pool.map(userarrays.seen_by, [handle] * 24, chunksize=1)
    identities: dict[int, set[int]] = {}
    for pid, identity in seen:
        identities.setdefault(pid, set()).add(identity)
    assert all(len(found) == 1 for found in identities.values()), identities
    assert array_pool.map(userarrays.total, [handle, handle]) == [float(big.sum())] * 2
    assert array_pool.apply(usertasks.identity, ({"data": handle},))["data"].shape == big.shape
    handle.delete()
    with pytest.raises(HandleDeleted, match=handle.id):
        array_pool.apply(userarrays.total, (handle,))


def test_a_pools_end_deletes_its_put_values_and_detach_keeps_them(cluster: Cluster) -> None:
    pool = cluster.pool()
    handle = pool.put([np.arange(3), "label"])
    assert pool.apply(usertasks.identity, (handle,))[1] == "label"
    client = pool._ledger.client
    pool.terminate()
    assert not client.exists(handle.key)
    detached = cluster.pool()
    kept = detached.put(np.arange(4))
    detached.detach()
    with cluster.pool() as other:
        assert other.apply(userarrays.total, (kept,)) == 6.0
    assert client.exists(kept.key)
    client.delete(kept.key)


def test_no_array_bytes_are_left_once_results_are_collected_or_a_map_fails(array_pool: Pool) -> None:
    result = array_pool.map_async(userarrays.doubled_in_place, [np.ones(4)] * 6, chunksize=2)
    assert len(result.get(60)) == 6
    client = array_pool._ledger.client
    assert not any(client.exists(f"farpool-data-{task_id}") for task_id in result.task_ids)
    with pytest.raises(TypeError):
        array_pool.map(userarrays.total, [np.ones(3), np.array(["text"]), *[np.ones(3)] * 6], chunksize=1)
    poll(lambda: not data_keys(array_pool), "a failed map's array bytes to be deleted")
    assert array_pool.map(userarrays.total, [np.ones(2)]) == [2.0]
    assert not data_keys(array_pool)


def test_terminate_mid_map_leaves_no_array_bytes(cluster: Cluster) -> None:
    pool = cluster.pool()
    client = pool._ledger.client
    pool.map_async(userarrays.slow_total, [(np.ones(8), 0.5)] * 8, chunksize=1)
    pool.starmap_async(userarrays.slow_total, [(np.ones(8), 0.5)] * 8, chunksize=1)
    pool.terminate()
    poll(lambda: not list(client.scan_iter(match=b"farpool-data-*")), "terminate to delete the arrays")


def test_a_value_over_the_payload_limit_is_refused_naming_the_setting(cluster: Cluster) -> None:
    app = create_app(cluster.settings.model_copy(update={"max_payload": 1000}))
    try:
        with Pool(app=app) as pool:
            with pytest.raises(ValueError, match=r"item 0 is an array of 1,600 bytes.*FARPOOL_MAX_PAYLOAD"):
                pool.map(userarrays.total, [np.zeros(200)])
            with pytest.raises(ValueError, match="FARPOOL_MAX_PAYLOAD"):
                pool.put(np.zeros(200))
            assert pool.map(userarrays.total, [np.ones(100)]) == [100.0]
    finally:
        close_app(app)


def shared_files(pid: int) -> list[str]:
    """The farpool memory files process `pid` holds open."""
    found = []
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if target.startswith("/memfd:farpool-"):
            found.append(target)
    return found


def worker_processes(cluster: Cluster) -> list[int]:
    """The suite's worker and its prefork processes."""
    worker = cluster.local.worker.pid
    return [worker, *descendant_pids(worker)]


def test_memory_files_go_when_their_results_are_collected(cluster: Cluster) -> None:
    with cluster.pool() as pool:
        arrays = [np.arange(100_000.0) for _ in range(6)]
        assert pool._arrays.shared.wanted(), "the suite's worker runs on this machine"
        back = pool.map(userarrays.doubled_in_place, arrays, chunksize=1)
        assert all(same(array, np.arange(100_000.0) * 2) for array in back)
        assert shared_files(os.getpid()) == []
        workers = worker_processes(cluster)
        assert workers, "the suite's worker processes"

        def workers_hold_nothing() -> bool:
            pool.map(userarrays.total, [np.zeros(1)] * 8, chunksize=1)
            return not any(shared_files(pid) for pid in workers if os.path.exists(f"/proc/{pid}"))

        poll(workers_hold_nothing, "the workers to close the files of collected results")


def test_a_map_of_large_arrays_keeps_copies_only_of_the_chunks_in_flight(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import producer.sending.calls

    with cluster.pool() as pool:
        calls = [(np.full(1000, index, dtype=np.int32), os.getpid()) for index in range(16)]
        held_at_once = pool.starmap(userarrays.sender_files, calls, chunksize=1)
        assert max(held_at_once) > 2 * pool._processes, "all at once, below the window's threshold"
        monkeypatch.setattr(producer.sending.calls, "WINDOW_BYTES", 1000)
        held_at_once = pool.starmap(userarrays.sender_files, calls, chunksize=1)
        assert max(held_at_once) <= 2 * pool._processes, held_at_once
        assert pool.map(userarrays.total, [array for array, _ in calls]) == [1000.0 * i for i in range(16)]
        with pytest.raises(TypeError):
            pool.map(
                userarrays.total, [np.ones(300), np.array(["x"] * 300), *[np.ones(300)] * 8], chunksize=1
            )
        assert shared_files(os.getpid()) == []
