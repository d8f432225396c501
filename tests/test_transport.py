"""farpool's Redis transport (tasks/transport.py): a message taken as the broker goes away is not lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from conftest import broker_and_app

from tasks import transport as farpool_transport

pytestmark = pytest.mark.integration


def test_a_message_taken_but_not_recorded_goes_back_on_its_queue(tmp_path: Path) -> None:
    """kombu takes a message (BRPOP), then records it as unacked (MULTI): between the two, a
    broker restart left it nowhere. farpool's next channel puts it back."""
    server, app = broker_and_app(tmp_path)
    queue = app.settings.queue
    try:
        app.send_task("tasks.examples.square", args=[5], queue=queue)
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            raw = channel.client.rpop(queue)  # what BRPOP hands the worker
            message = channel.Message(json.loads(raw), channel=channel)
            server.stop()  # the take is in the append-only file; the record cannot be made
            with pytest.raises(redis.ConnectionError):
                channel.qos.append(message, message.delivery_tag)
        server.start()
        with app.connection_for_read() as connection:
            connection.default_channel  # noqa: B018 - a new channel, as a reconnecting worker makes
            (back,) = connection.default_channel.client.lrange(queue, 0, -1)
        assert json.loads(back)["headers"]["id"] == message.headers["id"]
        assert json.loads(back)["headers"]["redelivered"] is True
    finally:
        server.stop()
        app.close()


@pytest.mark.unit
def test_farpools_channels_take_every_option_kombus_take() -> None:
    """A Sentinel channel that dropped kombu's `master_name` could not connect at all."""
    from kombu.transport import redis as kombu_redis

    for ours, kombus in (
        (farpool_transport.Channel, kombu_redis.Channel),
        (farpool_transport.SentinelChannel, kombu_redis.SentinelChannel),
    ):
        assert set(kombus.from_transport_options) <= set(ours.from_transport_options), ours
        assert "publish_patience" in ours.from_transport_options
