"""The same calls on multiprocessing.Pool and on farpool: same results, same exception types."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Cluster

import producer
from producer import Pool
from tasks.examples import add, fail_on, square


# Plain functions for the stdlib side (Celery task objects run the same code on the workers).
def plain_square(x: float) -> float:
    return x * x


def plain_add(a: float, b: float) -> float:
    return a + b


def plain_fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


@pytest.fixture(scope="module")
def stdlib_pool() -> Iterator[Any]:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        yield pool


CASES: list[tuple[str, Callable[[Any, bool], Any]]] = [
    ("map", lambda p, ours: p.map(square if ours else plain_square, range(37))),
    ("map chunksize", lambda p, ours: p.map(square if ours else plain_square, range(37), 5)),
    ("map empty", lambda p, ours: p.map(square if ours else plain_square, [])),
    ("starmap", lambda p, ours: p.starmap(add if ours else plain_add, [(1, 2), (3, 4), (5, 6)])),
    ("apply", lambda p, ours: p.apply(add if ours else plain_add, (2, 3))),
    ("apply kwds", lambda p, ours: p.apply(fail_on if ours else plain_fail_on, (5,), {"bad": 4})),
    ("imap", lambda p, ours: list(p.imap(square if ours else plain_square, range(25)))),
    ("imap chunksize", lambda p, ours: list(p.imap(square if ours else plain_square, range(25), 4))),
    (
        "imap_unordered",
        lambda p, ours: sorted(p.imap_unordered(square if ours else plain_square, range(25))),
    ),
    ("map_async", lambda p, ours: p.map_async(square if ours else plain_square, range(20)).get(60)),
    (
        "starmap_async",
        lambda p, ours: p.starmap_async(add if ours else plain_add, [(1, 1), (2, 2)]).get(60),
    ),
    ("apply_async", lambda p, ours: p.apply_async(square if ours else plain_square, (9,)).get(60)),
    ("map error", lambda p, ours: p.map(fail_on if ours else plain_fail_on, range(10), 2)),
    ("starmap error", lambda p, ours: p.starmap(fail_on if ours else plain_fail_on, [(1,), (3,)])),
    ("apply error", lambda p, ours: p.apply(fail_on if ours else plain_fail_on, (3,))),
    ("imap error", lambda p, ours: list(p.imap(fail_on if ours else plain_fail_on, range(6)))),
    (
        "map_async error",
        lambda p, ours: p.map_async(fail_on if ours else plain_fail_on, range(8), 2).get(60),
    ),
    ("apply_async error", lambda p, ours: p.apply_async(fail_on if ours else plain_fail_on, (3,)).get(60)),
    ("map not iterable", lambda p, ours: p.map(square if ours else plain_square, 5)),
]


def outcome(call: Callable[[Any, bool], Any], pool: Any, ours: bool) -> tuple[str, Any]:
    try:
        return "value", call(pool, ours)
    except Exception as error:
        return "raised", type(error)


@pytest.mark.parametrize(("name", "call"), CASES, ids=[name for name, _ in CASES])
def test_same_result_or_exception_type(
    name: str, call: Callable[[Any, bool], Any], module_pool: Pool, stdlib_pool: Any
) -> None:
    assert outcome(call, module_pool, True) == outcome(call, stdlib_pool, False)


def test_remote_traceback_is_attached_as_the_cause(module_pool: Pool) -> None:
    with pytest.raises(ValueError, match="item 3 is bad") as caught:
        module_pool.map(fail_on, range(6))
    cause = caught.value.__cause__
    assert type(cause).__name__ == "RemoteTraceback"
    assert "fail_on" in str(cause) and "raise ValueError" in str(cause)


def test_context_manager_exit_terminates(cluster: Cluster) -> None:
    with cluster.pool() as pool:
        pool.map(square, range(3))
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, range(3))


def test_close_then_join_waits_for_outstanding_work(cluster: Cluster) -> None:
    pool = cluster.pool()
    results = [pool.apply_async(square, (n,)) for n in range(10)]
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply_async(square, (1,))
    pool.join()
    assert all(result.ready() for result in results)
    assert [result.get(0) for result in results] == [n * n for n in range(10)]


def test_join_before_close_is_an_error(module_pool: Pool) -> None:
    with pytest.raises(ValueError, match="still running"):
        module_pool.join()


def test_callbacks_run_in_the_producer(module_pool: Pool) -> None:
    got: list[Any] = []
    errors: list[BaseException] = []
    module_pool.map_async(square, range(5), callback=got.append).wait(60)
    module_pool.apply_async(fail_on, (3,), error_callback=errors.append).wait(60)
    assert got == [[0, 1, 4, 9, 16]]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_timeout_error_is_both_builtin_and_multiprocessing(module_pool: Pool) -> None:
    result = module_pool.apply_async("tasks.examples.nap", (2,))
    with pytest.raises(producer.TimeoutError) as caught:
        result.get(timeout=0.05)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, multiprocessing.TimeoutError)
    assert result.get(timeout=60) == 2


def test_successful_before_ready_is_a_value_error(module_pool: Pool) -> None:
    result = module_pool.apply_async("tasks.examples.nap", (0.5,))
    with pytest.raises(ValueError, match="not ready"):
        result.successful()
    result.wait(60)
    assert result.successful()


@pytest.mark.parametrize("chunksize", [0, -1, 1.5])
def test_bad_chunksize_is_a_value_error_before_sending(module_pool: Pool, chunksize: Any) -> None:
    # multiprocessing returns [None, ...] for chunksize=0; farpool refuses it.
    with pytest.raises(ValueError, match="chunksize"):
        module_pool.map(square, range(4), chunksize)


def test_a_raising_callback_does_not_stop_later_results(module_pool: Pool) -> None:
    def explode(value: Any) -> None:
        raise RuntimeError("callback bug")

    assert module_pool.apply_async(square, (2,), callback=explode).get(60) == 4
    assert module_pool.map(square, range(5)) == [0, 1, 4, 9, 16]


def source_breaking_after(k: int) -> Iterator[int]:
    """An input iterable that yields 0..k-1 and then raises."""
    yield from range(k)
    raise LookupError("the input broke")


def drain(results: Iterator[Any]) -> tuple[list[Any], str]:
    """Every value the iterator yields before it raises, and what it raised."""
    got: list[Any] = []
    try:
        for value in results:
            got.append(value)
    except Exception as error:
        return got, type(error).__name__
    return got, "no error"


@pytest.mark.parametrize("ordered", [True, False], ids=["imap", "imap_unordered"])
@pytest.mark.parametrize("chunksize", [1, 2, 4])
def test_imap_over_an_input_that_raises_yields_what_came_before_then_raises(
    module_pool: Pool, stdlib_pool: Any, ordered: bool, chunksize: int
) -> None:
    def run(pool: Any, func: Any) -> tuple[list[Any], str]:
        imap = pool.imap if ordered else pool.imap_unordered
        got, raised = drain(imap(func, source_breaking_after(5), chunksize))
        return (got if ordered else sorted(got)), raised

    ours, theirs = run(module_pool, square), run(stdlib_pool, plain_square)
    assert ours[1] == theirs[1] == "LookupError"
    if ordered:
        assert ours == theirs
    else:  # the stdlib's error can overtake values still running; farpool's never does
        assert set(theirs[0]) <= set(ours[0])
        assert ours == run(module_pool, square)
    assert ours[0] == [0, 1, 4, 9, 16][: len(ours[0])]
    if chunksize == 1:
        assert ours[0] == [0, 1, 4, 9, 16]


def test_imap_with_adaptive_chunks_yields_every_value_before_the_inputs_error(module_pool: Pool) -> None:
    """Without a chunksize nothing is lost: the values read before the error come first."""
    assert drain(module_pool.imap(square, source_breaking_after(5))) == ([0, 1, 4, 9, 16], "LookupError")
