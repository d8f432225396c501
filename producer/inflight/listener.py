"""A pool's one pub/sub connection to its results, and the thread that reads it.

It only turns messages into deliveries: `(key, payload)` for each result published on a key the
ledger subscribed to. It probes a connection that has been quiet while results are awaited,
reconnects with a short backoff when the connection fails, and says so, so that the ledger
can read back what was published while it was away (Redis keeps no pub/sub message).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from producer.inflight.liveness import BrokerWatch
from tasks.transport import RECONNECT_BACKOFF
from tasks.wire import LISTENER_CHANNEL_PREFIX

logger = logging.getLogger("farpool")
Deliver = Callable[[bytes, bytes], None]


class ResultListener:
    """Subscriptions to result keys, read by one daemon thread until `close()`.

    `deliver(key, payload)` for each message; `each_turn()` before each wait (at least once a
    second); `reconnected()` after a reconnect, once the connection answers again; `lost(error)`
    after each failure. `awaiting()` says whether results are expected (then the connection is
    probed when quiet). None of them may hold a reference to the pool: the thread outlives it.
    """

    def __init__(
        self,
        client: redis.Redis,
        watch: BrokerWatch,
        deliver: Deliver,
        each_turn: Callable[[], None],
        reconnected: Callable[[], None],
        lost: Callable[[Exception], None],
        awaiting: Callable[[], bool],
    ) -> None:
        self._client, self._watch = client, watch
        self._deliver, self._each_turn, self._reconnected = deliver, each_turn, reconnected
        self._lost, self._awaiting = lost, awaiting
        self._closed = False
        self._resync = False
        self._wake_channel = f"{LISTENER_CHANNEL_PREFIX}{uuid.uuid4().hex}"
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(self._wake_channel)
        self._pubsub.connection.register_connect_callback(self._on_reconnect)
        self.thread = threading.Thread(target=self._listen, name="farpool-results", daemon=True)
        self.thread.start()

    def subscribe(self, *keys: bytes) -> None:
        try:
            self._pubsub.subscribe(*keys)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            # redis-py records a subscription once its command went out: record these, so that
            # the listener's reconnect subscribes to them with the rest, then reads them back.
            self._pubsub.channels.update(dict.fromkeys(keys))
            self._resync = True

    def unsubscribe(self, *keys: bytes) -> None:
        if not self._closed:
            with contextlib.suppress(redis.RedisError):  # a lost connection resubscribes anew
                self._pubsub.unsubscribe(*keys)

    def _on_reconnect(self, connection: Any) -> None:
        self._resync = True

    def _listen(self) -> None:
        backoff = iter(RECONNECT_BACKOFF)
        while not self._closed:
            try:
                self._probe()
                self._each_turn()
                message = self._read()
                if message is not None:
                    self._watch.heard()
                elif self._watch.stale():
                    raise redis.TimeoutError("the result channel fell silent")
                backoff = iter(RECONNECT_BACKOFF)
                if self._resync:
                    self._resync = False
                    self._reconnected()
                    self._watch.heard()
                if message is not None and message["type"] == "message":
                    channel = bytes(message["channel"])
                    if channel != self._wake_channel.encode():
                        self._deliver(channel, bytes(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
                if self._closed:
                    return
                logger.debug("the results connection failed (%s): reconnecting", error)
                self._resync = True
                with contextlib.suppress(Exception):
                    self._pubsub.connection.disconnect()  # the next read reconnects and resubscribes
                self._lost(error)
                time.sleep(next(backoff, RECONNECT_BACKOFF[-1]))

    def _read(self) -> Any:
        try:
            return self._pubsub.get_message(timeout=1.0)
        except (TypeError, AttributeError, ValueError) as error:
            # redis-py's parsers, reading a socket another thread has just closed (a subscribe
            # that met a dead server disconnects the shared connection): a lost connection too.
            raise redis.ConnectionError(f"the connection closed during a read ({error})") from error

    def _probe(self) -> None:
        """While results are awaited, check now and then that the server still answers."""
        if not self._awaiting():
            self._watch.idle()
        elif self._watch.probe_due():
            self._client.publish(self._wake_channel, b"probe")

    def close(self) -> None:
        """Stop the thread (woken by a message, unless the server is given up on) and disconnect."""
        self._closed = True
        if not self._watch.given_up:
            with contextlib.suppress(redis.RedisError):
                self._client.publish(self._wake_channel, b"close")
        self.thread.join(timeout=5)
        self._pubsub.close()
