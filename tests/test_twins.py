"""A chunk whose message was redelivered may run twice: only its first stored result counts.

The backend's store script against a real server, without a worker: `expect_twin` is what a
worker calls when a redelivered message starts (tasks/app.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import states

from config import load_settings
from producer.local.embedded import EmbeddedServer
from tasks import create_app
from tasks.app import FarpoolCelery
from tasks.backend import REPLAY_GRACE, STORE_RETRY_SECONDS
from tasks.wire import DISCARDED, TWIN_PREFIX

pytestmark = pytest.mark.integration
TASK = "0b7e6f1e-twin-test"


@pytest.fixture
def app(valkey_server: EmbeddedServer) -> Iterator[FarpoolCelery]:
    settings = load_settings(broker_url=valkey_server.url, embedded_broker="never", visibility_timeout=60)
    app = create_app(settings)
    yield app
    client = app.backend.client  # type: ignore[attr-defined]
    client.delete(app.backend.get_key_for_task(TASK), twin_key(app), DISCARDED)  # type: ignore[attr-defined]
    app.close()


def twin_key(app: FarpoolCelery) -> str:
    return TWIN_PREFIX + app.backend.get_key_for_task(TASK).decode()  # type: ignore[attr-defined]


def store(app: FarpoolCelery, value: object) -> None:
    app.backend.store_result(TASK, value, states.SUCCESS)


def stored(app: FarpoolCelery) -> object:
    client: redis.Redis = app.backend.client  # type: ignore[attr-defined]
    if not client.exists(app.backend.get_key_for_task(TASK)):  # type: ignore[attr-defined]
        return None
    return app.backend.get_task_meta(TASK, cache=False)["result"]


def collect(app: FarpoolCelery) -> None:
    """What a producer does with a result it handed over: delete it."""
    app.backend.client.delete(app.backend.get_key_for_task(TASK))  # type: ignore[attr-defined]


def test_without_redelivery_a_store_after_collection_is_kept(app: FarpoolCelery) -> None:
    """What the marks change: a second store of an ordinary task is a new result (a retry)."""
    store(app, "first")
    collect(app)
    store(app, "second")
    assert stored(app) == "second"


def test_the_redelivered_run_stores_first_and_the_late_one_is_dropped(app: FarpoolCelery) -> None:
    app.backend.expect_twin(TASK)  # type: ignore[attr-defined]
    store(app, "redelivered run")
    assert stored(app) == "redelivered run"
    collect(app)
    store(app, "late run")  # the cut-off host is back
    assert stored(app) is None
    assert 0 < app.backend.client.ttl(twin_key(app)) <= REPLAY_GRACE  # type: ignore[attr-defined]
    store(app, "late run")  # the same store replayed: its first reply was lost to a timeout
    assert stored(app) is None


def test_the_late_run_stores_first_and_the_redelivered_one_is_dropped(app: FarpoolCelery) -> None:
    app.backend.expect_twin(TASK)  # type: ignore[attr-defined]
    store(app, "late run")
    collect(app)
    store(app, "redelivered run")
    assert stored(app) is None
    assert 0 < app.backend.client.ttl(twin_key(app)) <= REPLAY_GRACE  # type: ignore[attr-defined]


def test_a_redelivery_that_starts_after_the_first_result_is_dropped(app: FarpoolCelery) -> None:
    store(app, "late run")
    app.backend.expect_twin(TASK)  # type: ignore[attr-defined]
    store(app, "redelivered run")
    assert stored(app) == "late run"


def test_a_mark_whose_other_run_never_stores_expires(app: FarpoolCelery) -> None:
    """The other run's host lost power: the mark goes by itself once that run could not store."""
    app.backend.expect_twin(TASK)  # type: ignore[attr-defined]
    store(app, "redelivered run")
    ttl = app.backend.client.ttl(twin_key(app))  # type: ignore[attr-defined]
    assert 0 < ttl <= 60 + STORE_RETRY_SECONDS


def test_an_abandoned_twinned_task_stores_nothing(app: FarpoolCelery) -> None:
    app.backend.expect_twin(TASK)  # type: ignore[attr-defined]
    assert app.backend.discard([TASK], remember=60) == [TASK]  # type: ignore[attr-defined]
    store(app, "one run")
    store(app, "the other")
    store(app, "the other")  # replayed
    assert stored(app) is None


def test_a_stored_success_is_never_overwritten_by_a_later_state(app: FarpoolCelery) -> None:
    """A lost worker's late failure (or a redelivered run's) must not replace a success."""
    store(app, 42)
    app.backend.store_result(TASK, ValueError("late"), states.FAILURE)
    assert app.backend.get_task_meta(TASK, cache=False)["status"] == states.SUCCESS  # type: ignore[call-arg]
    assert app.backend.get_task_meta(TASK, cache=False)["result"] == 42  # type: ignore[call-arg]
