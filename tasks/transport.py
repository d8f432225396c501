"""kombu's Redis transports, with one redis-py client per channel instead of one per publish.

kombu's Redis channel builds a `redis.Redis` object for every message it publishes
(`Channel._create_client`); with redis-py 8 that construction was 18 % of a worker's main
process (sending task events). The clients share the channel's connection pool either way,
so reusing one changes nothing but the cost. Its publishes are also pipelined in batches
(kombu's Producer.batch), which kombu would refuse because of farpool's zero-retry Retry.
Selected by Celery's `broker_transport` setting.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import kombu
import redis
from celery.app import amqp
from kombu.transport import redis as kombu_redis
from kombu.utils.url import as_url
from redis.backoff import NoBackoff
from redis.retry import Retry

# Seconds between a lost connection's reconnect attempts, the last repeated: a result listener's
# (producer/inflight/listener.py) and a coordination call's (tasks/coordination/base.py).
RECONNECT_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)


def no_retries() -> Retry:
    """redis-py retries a failed command 3 times by default, each waiting its socket timeout:
    on a dead link one command then blocks a worker's event loop for 20 s or more. Celery and
    kombu retry at their own level (a reconnect, a result store), so redis-py need not."""
    return Retry(NoBackoff(), 0)


class _ReusedClient:
    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous)  # type: ignore[misc]
        cached = self.__dict__.get("_farpool_client")
        if cached is None or cached.connection_pool is not self.pool:  # type: ignore[attr-defined]
            cached = self.__dict__["_farpool_client"] = super()._create_client()  # type: ignore[misc]
        return cached

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        return {**super()._connparams(asynchronous), "retry": no_retries()}  # type: ignore[misc]


logger = logging.getLogger(__name__)
# Messages this process took from a queue but could not record as unacked: the broker went away
# between the two commands. kombu would lose them (they are in neither the queue nor the unacked
# hash, and never reach the worker's pool); the next channel puts them back on their queue.
_taken_not_recorded: list[tuple[dict[str, Any], str, str]] = []


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: Any) -> None:
        try:
            super().append(message, delivery_tag)
        except (redis.ConnectionError, redis.TimeoutError):
            delivery = message.delivery_info
            _taken_not_recorded.append((message._raw, delivery["exchange"], delivery["routing_key"]))
            raise


class Channel(_ReusedClient, kombu_redis.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._put_back_taken()

    def _put_back_taken(self) -> None:
        """Queue again what this process took without recording it (a redelivery: a TimeoutError
        may hide a record that was made, and then the task's twin mark keeps one result)."""
        while _taken_not_recorded:
            payload, exchange, routing_key = _taken_not_recorded.pop()
            try:
                with self.conn_or_acquire() as client, client.pipeline() as pipe:
                    self._do_restore_message(payload, exchange, routing_key, pipe)
                    pipe.execute()
            except (redis.ConnectionError, redis.TimeoutError):
                _taken_not_recorded.append((payload, exchange, routing_key))
                return
            logger.warning("put a message back on its queue: taken when the broker went away, never run")

    @property
    def supports_batch_publish(self) -> bool:
        """kombu pipelines a producer's publishes only without a redis-py Retry (a replayed
        pipeline could publish twice): farpool's Retry retries nothing, so it can."""
        kwargs = dict(self.pool.connection_kwargs)
        retry = kwargs.pop("retry", None)
        replays = retry is not None and retry.get_retries() > 0
        return not self.retry_on_timeout and not replays and kombu_redis._batch_publish_retry_safe(kwargs)


class SentinelChannel(_ReusedClient, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


class Connection(kombu.Connection):
    """kombu's, showing its URL as the user wrote it.

    kombu's `as_uri` names the transport by its setting (`tasks.transport:Transport://`) and
    writes `:**@` whether or not there is a password: the worker banner, Flower's log and the
    connection errors all print that. This one writes the scheme (`redis://`, `rediss://`,
    `sentinel://`), and `***` for a password only when there is one, as config.mask_url does.
    """

    def as_uri(self, include_password: bool = False, mask: str = "***", **kwargs: Any) -> str:
        scheme = _SCHEMES.get(str(self.transport_cls))
        if scheme is None:  # another transport, given by hand: kombu's own rendering
            return str(super().as_uri(include_password, mask, **kwargs))
        if scheme == "redis" and self.ssl:
            scheme = "rediss"
        vhost = self.virtual_host
        return str(
            as_url(
                scheme,
                self.hostname or "localhost",
                self.port,
                self.userid,
                self.password,
                quote(str(vhost)) if vhost not in (None, "", "/") else None,
                sanitize=not include_password,
                mask="***",
            )
        )


class AMQP(amqp.AMQP):
    """Celery's, making farpool's Connection (FarpoolCelery.amqp_cls)."""

    Connection = Connection


def transport_setting(url: str) -> str:
    """Celery's `broker_transport` value selecting farpool's transport for this broker URL."""
    transport = SentinelTransport if url.startswith("sentinel://") else Transport
    return f"{__name__}:{transport.__name__}"


_SCHEMES = {transport_setting("redis://"): "redis", transport_setting("sentinel://"): "sentinel"}
