"""A result stored before the producer's subscription reached the server is still delivered.

A producer subscribes to a task's result channel and sends the task on another connection, without
waiting in between (producer/inflight/ledger.py: `unsent`). Across hosts, the subscription can arrive
after the worker published the result; the ledger looks for such results once, a second or two later.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import states

from config import load_settings
from producer.inflight.ledger import Ledger
from producer.local.embedded import EmbeddedServer
from tasks import create_app
from tasks.app import FarpoolCelery

pytestmark = pytest.mark.integration


@pytest.fixture
def app(valkey_server: EmbeddedServer) -> Iterator[FarpoolCelery]:
    app = create_app(load_settings(broker_url=valkey_server.url, embedded_broker="never"))
    yield app
    app.close()


def test_a_result_published_before_the_subscription_is_found(app: FarpoolCelery) -> None:
    ledger = Ledger(app)
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, 42, states.SUCCESS)  # its PUBLISH reached nobody
    arrived = threading.Event()
    values: list[Any] = []

    class Receiver:
        def _set(self, _: str, meta: dict[str, Any]) -> None:
            values.append(meta["result"])
            arrived.set()

    try:
        ledger.expect([task_id], Receiver(), unsent=True)
        assert arrived.wait(10), "the stored result was never delivered"
        assert values == [42]
    finally:
        ledger.collect([task_id])
        ledger.close()
