"""The producer's watch on its results connection (producer/inflight/liveness.py): pure logic,
a fake clock."""

from __future__ import annotations

import pytest

from producer.inflight.liveness import PROBE_INTERVAL, STALE_AFTER, BrokerWatch

pytestmark = pytest.mark.unit  # pure logic: no server, no worker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_probe_answered_in_time_is_not_stale(clock: Clock) -> None:
    observer = BrokerWatch(give_up_after=60, clock=clock)
    assert observer.probe_due()
    assert not observer.probe_due()  # one per interval
    clock.now += STALE_AFTER
    observer.heard()
    assert not observer.stale()


def test_a_probe_unanswered_for_too_long_is_stale(clock: Clock) -> None:
    observer = BrokerWatch(give_up_after=60, clock=clock)
    observer.probe_due()
    clock.now += PROBE_INTERVAL
    assert observer.probe_due()  # a second probe does not restart the count
    clock.now += STALE_AFTER
    assert observer.stale()


def test_failures_give_up_after_the_limit_counted_from_the_silence(clock: Clock) -> None:
    observer = BrokerWatch(give_up_after=20, clock=clock)
    observer.probe_due()
    clock.now += STALE_AFTER + 1
    assert observer.stale()
    assert observer.failed() == pytest.approx(STALE_AFTER)  # the silence before the failure counts
    assert not observer.given_up
    clock.now += 20 - STALE_AFTER
    assert observer.failed() >= 20 and observer.given_up
    observer.heard()
    assert not observer.given_up


def test_nothing_awaited_means_no_probes_and_no_staleness(clock: Clock) -> None:
    observer = BrokerWatch(give_up_after=60, clock=clock)
    observer.probe_due()
    observer.idle()
    clock.now += 3600
    assert not observer.stale()
    assert observer.failed() == 0.0
