"""The results table and the result types, with no server and no worker: a fake ledger keeps its
books in the real table (producer/inflight/table.py) and feeds outcomes as the listener would."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from celery import states

from config import load_settings
from producer.errors import TimeoutError
from producer.imap import IMapIterator
from producer.inflight.cleanup import Cleanup
from producer.inflight.table import InFlight, Receiver
from producer.results import AsyncResult, Callbacks, MapResult, Sent
from producer.sending.calls import Calls
from tasks import create_app

pytestmark = pytest.mark.unit


def ok(value: Any) -> dict[str, Any]:
    return {"status": states.SUCCESS, "result": value, "traceback": None}


def failed(error: BaseException) -> dict[str, Any]:
    return {"status": states.FAILURE, "result": error, "traceback": None}


class FakeLedger:
    """The ledger's interface to the results, over the real table; `feed` plays the listener."""

    remember = 60

    def __init__(self) -> None:
        self.subscribed: set[bytes] = set()
        self.table = InFlight(self._subscribe, self._unsubscribe)
        self.collected: list[tuple[list[str], str | None]] = []
        self.abandoned: list[list[str]] = []
        self.records: dict[str, Any] = {}

    def _subscribe(self, *keys: bytes) -> None:
        self.subscribed.update(keys)

    def _unsubscribe(self, *keys: bytes) -> None:
        self.subscribed.difference_update(keys)

    def expect(
        self,
        task_ids: Sequence[str],
        receiver: Receiver,
        *,
        owned: bool = True,
        record: tuple[str, Any] | None = None,
        unsent: bool = False,
        sent_later: Sequence[str] = (),
    ) -> None:
        if record is not None:
            self.records[record[0]] = record[1]
        keys = {task_id.encode(): task_id for task_id in task_ids}
        self.table.expect(keys, receiver, owned, record[0] if record else None, unsent, set(sent_later))

    def feed(self, task_id: str, meta: dict[str, Any]) -> None:
        expected = self.table.claim(task_id.encode())
        assert expected is not None, f"{task_id} was not expected"
        try:
            expected.receiver._set(task_id, meta)
        finally:
            self.table.done(task_id.encode(), expected)

    def collect(self, task_ids: Sequence[str], record_id: str | None = None) -> None:
        self.collected.append((list(task_ids), record_id))
        self.table.collected(task_ids, record_id)

    def abandon(self, task_ids: Sequence[str], terminate: bool = False) -> None:
        self.abandoned.append(list(task_ids))
        self.table.abandon([task_id.encode() for task_id in task_ids], task_ids)


# -- the table -------------------------------------------------------------------------------------


def test_the_table_subscribes_to_what_it_expects_and_lets_go_of_what_arrived() -> None:
    ledger = FakeLedger()
    result: AsyncResult[int] = AsyncResult(ledger, Sent("t1", "square"))  # type: ignore[arg-type]
    assert ledger.subscribed == {b"t1"}
    assert ledger.table.uncollected() == ["t1"]
    ledger.feed("t1", ok(4))
    assert ledger.subscribed == set()
    assert ledger.table.uncollected() == ["t1"], "arrived, not collected yet"
    assert result.get(0) == 4
    assert ledger.table.uncollected() == []
    assert ledger.table.claim(b"t1") is None, "delivered once"


def test_join_waits_for_owned_tasks_and_draining_ones_not_for_attached_ones() -> None:
    table = InFlight(lambda *keys: None, lambda *keys: None)
    receiver = AsyncResultRecorder()
    table.expect({b"attached": "attached"}, receiver, owned=False)
    assert not table.busy()
    table.wait_idle()  # nothing owned: returns at once
    table.expect({b"mine": "mine"}, receiver)
    assert table.busy()
    assert table.drain([b"mine"])
    table.abandon([b"mine"], ["mine"])
    assert table.busy(), "an abandoned task still running is waited for, as multiprocessing's join"
    joined = threading.Event()
    waiter = threading.Thread(target=lambda: (table.wait_idle(), joined.set()))
    waiter.start()
    assert table.drained([b"mine", b"other"]) == {b"mine"}
    assert joined.wait(10), "join() woke once the last one ended"
    waiter.join()


class AsyncResultRecorder:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, dict[str, Any]]] = []

    def _set(self, task_id: str, meta: dict[str, Any]) -> None:
        self.outcomes.append((task_id, meta))


def test_abandon_hands_back_the_records_and_the_uncollected_arrivals() -> None:
    ledger = FakeLedger()
    sent = Sent("map", "square", ("c1", "c2"), (1, 1), gathered=True, recorded=True)
    MapResult(ledger, sent)  # type: ignore[arg-type]
    ledger.table.claim(b"c1")  # arrived: its receiver runs
    records, arrived = ledger.table.abandon([b"c1", b"c2", b"map"], ["c1", "c2", "map"])
    assert (records, arrived) == (["map"], {"c1"})
    assert ledger.table.uncollected() == []


def test_a_task_subscribed_before_it_was_sent_is_looked_for_once_a_turn_later() -> None:
    table = InFlight(lambda *keys: None, lambda *keys: None)
    table.expect({b"a": "a"}, AsyncResultRecorder(), unsent=True)
    assert table.take_unverified() == [], "not yet: its subscription may still be on its way"
    table.expect({b"b": "b"}, AsyncResultRecorder(), unsent=True)
    assert table.take_unverified() == [b"a"]
    table.claim(b"b")
    assert table.take_unverified() == [], "b arrived meanwhile"


# -- AsyncResult and MapResult ---------------------------------------------------------------------


def test_a_map_assembles_its_chunks_in_order_whatever_order_they_arrive_in() -> None:
    ledger = FakeLedger()
    progress: list[int] = []
    sent = Sent("m", "square", ("c1", "c2", "c3"), (2, 2, 1))
    result: MapResult[int] = MapResult(ledger, sent, Callbacks(on_progress=progress.append))  # type: ignore[arg-type]
    ledger.feed("c3", ok([25]))
    ledger.feed("c1", ok([1, 4]))
    assert not result.ready()
    ledger.feed("c2", ok([9, 16]))
    assert result.get(0) == [1, 4, 9, 16, 25]
    assert sorted(progress) == [1, 2, 2]
    assert ledger.collected == [(["c1", "c2", "c3"], None)]


def test_a_map_async_takes_its_value_from_the_gather_task_and_deletes_its_record() -> None:
    ledger = FakeLedger()
    sent = Sent("m", "square", ("c1", "c2"), (1, 1), gathered=True, recorded=True)
    result: MapResult[int] = MapResult(ledger, sent)  # type: ignore[arg-type]
    assert ledger.records["m"] == {"task": "square", "chunks": ["c1", "c2"]}
    ledger.feed("c1", ok([1]))
    ledger.feed("c2", ok([4]))
    assert not result.ready(), "the gather task's value is the map's"
    ledger.feed("m", ok([1, 4]))
    assert result.get(0) == [1, 4]
    assert ledger.collected == [(["c1", "c2", "m"], "m")]


def test_a_failed_chunk_fails_the_map_and_abandons_the_rest() -> None:
    ledger = FakeLedger()
    errors: list[BaseException] = []
    sent = Sent("m", "fail_on", ("c1", "c2", "c3"), (1, 1, 1))
    result: MapResult[int] = MapResult(ledger, sent, Callbacks(error_callback=errors.append))  # type: ignore[arg-type]
    ledger.feed("c1", ok([1]))
    ledger.feed("c2", failed(ValueError("item 1 is bad")))
    assert ledger.abandoned == [["c3"]]
    with pytest.raises(ValueError, match="item 1 is bad"):
        result.get(0)
    assert [str(error) for error in errors] == ["item 1 is bad"]
    assert ledger.collected == [(["c1", "c2", "c3"], None)], "the error_callback collected the map"
    assert ledger.table.uncollected() == []


@pytest.mark.parametrize("star", [False, True], ids=["map_async", "starmap_async"])
@pytest.mark.parametrize("chunksize", [None, 1])
def test_an_empty_map_async_is_ready_at_once_with_an_empty_list(star: bool, chunksize: int | None) -> None:
    """Issue 21: map_async(f, []).get() never returned (an empty chord never fires its body);
    as multiprocessing's, it calls no callback."""
    app = create_app(load_settings(broker_url="redis://127.0.0.1:1/0"))
    ledger = FakeLedger()
    calls = Calls(app, SimpleNamespace(max_payload=1 << 20), ledger, 2, lambda: None)  # type: ignore[arg-type]
    called: list[Any] = []
    try:
        result = calls.map_async("tasks.examples:square", [], chunksize, star, called.append, None, None)
        assert result.ready()
        assert result.get(0) == []
        assert ledger.subscribed == set() and ledger.records == {}
        assert called == []
    finally:
        app.close()


def test_get_with_a_timeout_raises_the_timeout_error_both_hierarchies_catch() -> None:
    ledger = FakeLedger()
    result: AsyncResult[int] = AsyncResult(ledger, Sent("t", "square"))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        result.get(0)
    import multiprocessing

    with pytest.raises(multiprocessing.TimeoutError):
        result.get(0)


def test_a_callback_that_raises_still_wakes_the_waiters() -> None:
    ledger = FakeLedger()

    def callback(value: int) -> None:
        raise RuntimeError("the user's callback")

    result: AsyncResult[int] = AsyncResult(ledger, Sent("t", "square"), Callbacks(callback))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="the user's callback"):
        ledger.feed("t", ok(3))
    assert result.ready() and result.get(0) == 3


# -- IMapIterator ----------------------------------------------------------------------------------


class Submitted:
    """imap's submit: records each chunk and names its task `i<index of its first item>`."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[Any]] = {}

    def __call__(self, items: list[Any], start: int) -> str:
        task_id = f"i{start}"
        self.chunks[task_id] = items
        return task_id


def answer(ledger: FakeLedger, submitted: Submitted, task_id: str) -> None:
    """The worker's timed reply for a chunk (tasks/wire.py): [seconds computing, values]."""
    ledger.feed(task_id, ok([0.001, [item * item for item in submitted.chunks[task_id]]]))


def imap(
    ledger: FakeLedger, submitted: Submitted, items: Any, ordered: bool, **options: Any
) -> IMapIterator[int]:
    options.setdefault("chunksize", 2)
    return IMapIterator(ledger, submitted, items, window=2, ordered=ordered, star=False, **options)  # type: ignore[arg-type]


def test_imap_keeps_a_window_of_chunks_in_flight_and_yields_in_order() -> None:
    ledger, submitted = FakeLedger(), Submitted()
    iterator = imap(ledger, submitted, range(7), ordered=True)
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)  # fills the window: two chunks sent, nothing back yet
    assert list(submitted.chunks) == ["i0", "i2"]
    answer(ledger, submitted, "i2")
    answer(ledger, submitted, "i0")
    assert [iterator.next(timeout=0) for _ in range(4)] == [0, 1, 4, 9]
    assert list(submitted.chunks) == ["i0", "i2", "i4"], "one more as the first chunk was yielded"
    answer(ledger, submitted, "i4")
    assert iterator.next(timeout=0) == 16
    assert list(submitted.chunks) == ["i0", "i2", "i4", "i6"]
    answer(ledger, submitted, "i6")
    assert list(iterator) == [25, 36]
    assert [ids for ids, _ in ledger.collected] == [["i2"], ["i0"], ["i4"], ["i6"]]


def test_imap_unordered_yields_as_chunks_arrive() -> None:
    ledger, submitted = FakeLedger(), Submitted()
    iterator = imap(ledger, submitted, range(4), ordered=False)
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)
    answer(ledger, submitted, "i2")
    assert [iterator.next(timeout=0), iterator.next(timeout=0)] == [4, 9]
    answer(ledger, submitted, "i0")
    assert list(iterator) == [0, 1]


def test_imap_closed_early_abandons_what_is_in_flight() -> None:
    ledger, submitted = FakeLedger(), Submitted()
    iterator = imap(ledger, submitted, range(10), ordered=True)
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)
    iterator.close()
    assert ledger.abandoned == [["i0", "i2"]]
    assert list(iterator) == []


def test_imap_raises_a_chunks_failure_and_stops() -> None:
    ledger, submitted = FakeLedger(), Submitted()
    iterator = imap(ledger, submitted, range(4), ordered=True)
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)
    ledger.feed("i0", failed(ZeroDivisionError("no")))
    with pytest.raises(ZeroDivisionError):
        iterator.next(timeout=0)
    assert ledger.abandoned == [["i2"]]


def test_imap_without_a_chunksize_sizes_its_chunks_from_what_comes_back() -> None:
    ledger, submitted = FakeLedger(), Submitted()
    iterator = imap(ledger, submitted, range(100), ordered=True, chunksize=None)
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)
    assert [len(items) for items in submitted.chunks.values()] == [1, 1], "it starts at one item"
    answer(ledger, submitted, "i0")  # 1 ms of work per item, an overhead far below 5 ms
    assert iterator.next(timeout=0) == 0
    with pytest.raises(TimeoutError):
        iterator.next(timeout=0)
    assert list(submitted.chunks) == ["i0", "i1", "i2"]
    assert len(submitted.chunks["i2"]) >= 4, "grown from one reply: ≥ 5 ms of work per chunk"


# -- the clean-up of a failed map_async --------------------------------------------------------------


class FakeBackend:
    """tasks/backend.py's methods the clean-up calls, recorded; every discarded task is in flight."""

    def __init__(self) -> None:
        self.done: list[tuple[Any, ...]] = []
        self.client = SimpleNamespace(
            delete=lambda *keys: self.done.append(("delete", *keys)),
            zmscore=lambda key, keys: [1.0] * len(keys),  # their marks are there: still running
        )

    def get_key_for_task(self, task_id: str) -> bytes:
        return f"celery-task-meta-{task_id}".encode()

    def discard(self, task_ids: Sequence[str], remember: float) -> list[str]:
        return list(task_ids)

    def abandon_chord(self, group_id: str, remember: float) -> None:
        self.done.append(("abandon_chord", group_id))

    def withdrawn(self, task_ids: Sequence[str]) -> None:
        self.done.append(("withdrawn", *task_ids))

    def forget_chord(self, group_id: str) -> None:
        self.done.append(("forget_chord", group_id))


def test_a_failed_map_asyncs_marks_go_once_its_last_running_chunk_has_ended() -> None:
    """Issue 21: a failed map left farpool-discarded behind. The producer's part: a withdrawn
    chunk's mark goes at once, the chord's marks once its running chunk's store was dropped."""
    backend = FakeBackend()
    broadcasts: list[Any] = []
    app = SimpleNamespace(
        backend=backend, control=SimpleNamespace(broadcast=lambda *a, **k: broadcasts.append(k))
    )
    table = InFlight(lambda *keys: None, lambda *keys: None)
    withdraw = lambda task_ids: [task_id for task_id in task_ids if task_id == "queued"]  # noqa: E731
    cleanup = Cleanup(app, table, 60, lambda: False, withdraw)  # type: ignore[arg-type]
    keys = {backend.get_key_for_task(task_id): task_id for task_id in ("failed", "queued", "running", "map")}
    table.expect(keys, AsyncResultRecorder(), record_id="map")
    failed_key = backend.get_key_for_task("failed")
    claimed = table.claim(failed_key)
    assert claimed is not None
    table.done(failed_key, claimed)  # it arrived, with the failure that abandons the rest
    cleanup.abandon(["queued", "running", "map"])  # what MapResult._fail abandons
    assert ("withdrawn", "queued") in backend.done
    assert ("abandon_chord", "map") in backend.done
    assert broadcasts == [{"arguments": {"task_id": ["running", "map"], "terminate": False}}]
    assert ("forget_chord", "map") not in backend.done, "its running chunk may still store"
    assert table.busy(), "join() waits for the running chunk"
    cleanup.drained([backend.get_key_for_task("running")])  # the worker dropped its store
    assert backend.done[-1] == ("forget_chord", "map")
    assert not table.busy()
