"""When a pool looks for lost tasks, and which (producer/lost.py): pure logic, no server."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from celery import Celery

from producer.inflight.lost import LOOK_AT_MOST_EVERY, STALL_SECONDS, LostLook, looked_for
from producer.sending.publishing import all_sent_before, under_way

pytestmark = pytest.mark.unit


@dataclass
class Awaited:
    task_id: str
    owned: bool
    queued: bool
    since: float


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_calls_sent_are_looked_for() -> None:
    awaited = [
        Awaited("sent", owned=True, queued=True, since=10.0),
        Awaited("being-sent", owned=True, queued=True, since=30.0),
        Awaited("gather", owned=True, queued=False, since=10.0),  # a worker sends it, at the end
        Awaited("attached", owned=False, queued=True, since=30.0),  # another process sent it
    ]
    assert looked_for(awaited, sent_before=20.0) == ["sent", "attached"]
    assert looked_for(awaited, sent_before=None) == ["attached"]  # a send is under way


def test_all_sent_before_is_none_while_a_send_is_under_way() -> None:
    app = Celery("look", set_as_current=False)
    before = all_sent_before(app)
    assert before is not None
    with under_way(app), under_way(app):
        assert all_sent_before(app) is None
    after = all_sent_before(app)
    assert after is not None and after >= before


def test_a_look_comes_after_a_stall_and_the_looks_space_out() -> None:
    clock = Clock()
    looks: list[list[str]] = []

    def find_missing(ids: list[str]) -> list[str]:
        looks.append(list(ids))
        return []

    look = LostLook(find_missing, clock)
    assert look.stalled(lambda: ["a"]) == [] and looks == []
    clock.now += STALL_SECONDS
    look.stalled(lambda: ["a"])
    assert looks == [["a"]]
    look.stalled(lambda: ["a"])  # at once again: no
    assert len(looks) == 1
    times = []
    for _ in range(6):
        before = len(looks)
        while len(looks) == before:
            clock.now += 0.5
            look.stalled(lambda: ["a"])
        times.append(clock.now)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[-1] == LOOK_AT_MOST_EVERY and gaps == sorted(gaps)
    look.progressed()  # a result arrived: the next look waits for a whole stall again
    before = len(looks)
    clock.now += STALL_SECONDS - 0.5
    look.stalled(lambda: ["a"])
    assert len(looks) == before
