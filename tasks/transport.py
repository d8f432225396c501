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
import os
from time import monotonic
from typing import Any
from urllib.parse import quote

import kombu
import redis
from celery.app import amqp
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from kombu.utils.url import as_url
from redis.backoff import NoBackoff
from redis.retry import Retry

from tasks.inflight import Holder
from tasks.publish_batch import SurvivingPublishBatch
from tasks.wire import CONSUMERS

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


# This process's consumer side (tasks/inflight.py): one per process, as its in-flight list is.
HOLDER = Holder()
os.register_at_fork(after_in_child=HOLDER.forget)


class QoS(kombu_redis.QoS):
    """kombu's, for messages taken by BLMOVE: already recorded (in this consumer's in-flight list)
    when they arrive, acked by one LREM, given back by one script. Messages taken otherwise (a
    basic_get, a no-ack channel's BRPOP) keep kombu's unacked hash and its visibility timeout."""

    # What this process holds, by delivery tag (HOLDER.held), whichever channel's QoS acks it:
    # kombu hands a message taken for a cancelled consumer to the connection's first channel.
    @property
    def _held(self) -> dict[Any, bytes]:
        return HOLDER.held

    def append(self, message: Any, delivery_tag: Any) -> None:
        if delivery_tag in self._held:
            virtual.QoS.append(self, message, delivery_tag)
            return
        try:
            super().append(message, delivery_tag)
        except (redis.ConnectionError, redis.TimeoutError):
            delivery = message.delivery_info
            _taken_not_recorded.append((message._raw, delivery["exchange"], delivery["routing_key"]))
            raise

    def ack(self, delivery_tag: Any) -> None:
        raw = self._held.pop(delivery_tag, None)
        if raw is None:
            super().ack(delivery_tag)
            return
        virtual.QoS.ack(self, delivery_tag)
        HOLDER.ack_later(raw)  # no round trip of its own: it goes with the next take

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        raw = self._held.get(delivery_tag)
        if raw is None:
            super().reject(delivery_tag, requeue=requeue)
        elif requeue:
            self.restore_by_tag(delivery_tag, leftmost=True)
            virtual.QoS.ack(self, delivery_tag)
        else:
            self.ack(delivery_tag)

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        raw = self._held.pop(tag, None)
        if raw is None:
            super().restore_by_tag(tag, client=client, leftmost=leftmost)
            return
        try:
            with self.channel.conn_or_acquire(client) as client:
                HOLDER.give_back(client, self.channel, raw, last=leftmost)
        except self.channel.connection_errors:
            # Still held in Redis by this live consumer, so no sweep would return it: the next
            # tick does (a prefork child killed while the broker was away, a close on a lost link).
            HOLDER.unsent_returns.append((raw, leftmost))
            logger.warning("could not put a message back on its queue yet: retried every second")

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """Every sweep interval: this consumer's liveness, then the silent consumers' messages,
        then (kombu's own) what is left in the unacked hash past the visibility timeout."""
        with self.channel.conn_or_acquire() as client:
            HOLDER.tick(client, self.channel)
        super().restore_visible(start, num, interval)


class Channel(_ReusedClient, kombu_redis.Channel):
    QoS = QoS
    # No priority queues: BLMOVE takes from one list (farpool sends no priorities; a message
    # sent with one goes to the queue itself, as kombu's priority steps would put priority 0).
    priority_steps = [0]  # noqa: RUF012 - kombu's class attribute

    # Seconds a batch of publishes waits for a restarted broker (tasks/publish_batch.py).
    publish_patience = 60.0
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "publish_patience")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._no_ack_queues: set[str] = set()
        self._taking: str | None = None  # the queue of the BLMOVE sent, until its reply is read
        self._acks_in_flight: list[bytes] = []  # LREMs sent with it, until their replies are read
        self._announcing = False  # the SADD sent with it, until its reply is read
        super().__init__(*args, **kwargs)
        self._put_back_taken()

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _reliable_queue(self) -> str | None:
        """The queue to take from with BLMOVE, or None for kombu's BRPOP (a no-ack consumer,
        such as `celery inspect` waiting for replies, needs no record)."""
        queues = self.active_queues
        if not queues or self._no_ack_queues.intersection(queues) or self.global_keyprefix:
            return None
        # BLMOVE takes from one list: the fair cycle names the next queue each take.
        return str(self._queue_cycle.consume(len(queues))[0])

    def _brpop_start(self, timeout: int | None = None) -> None:
        queue = self._reliable_queue()
        if queue is None:
            super()._brpop_start(timeout)
            return
        if HOLDER.due():
            # Consumers outside Celery's event loop have no timer: refresh here (a failure is
            # the broker's).
            with self.conn_or_acquire() as client:
                HOLDER.tick(client, self)
        if HOLDER.reply_lost:
            with self.conn_or_acquire() as client:
                HOLDER.reclaim_unknown(client, self)
        if timeout is None:
            timeout = self.brpop_timeout
        connection = self.client.connection
        # The acks due go in the same write as the take: one round trip per task, not two.
        # Announced in the same write too: never a take unannounced on whichever server this is
        # (a restarted one, a failover's), or the sweeps could not see what it holds.
        acks = HOLDER.take_acks()
        commands: list[tuple[Any, ...]] = [("SADD", CONSUMERS, HOLDER.consumer)]
        commands += [("LREM", HOLDER.inflight, 1, raw) for raw in acks]
        commands.append(("BLMOVE", queue, HOLDER.inflight, "RIGHT", "LEFT", timeout or 0))
        self._announcing = True
        self._acks_in_flight = acks
        self._taking = queue
        self._in_poll = connection
        self._brpop_sent_at = monotonic()
        try:
            connection.send_packed_command(connection.pack_commands(commands))
        except BaseException:
            self._unsent()
            raise

    def _unsent(self) -> None:
        """The take's write or a reply was lost: its acks go with the next one (LREM is idempotent),
        and what its BLMOVE may have moved is looked for before the next take."""
        HOLDER.reply_lost = HOLDER.reply_lost or self._taking is not None
        HOLDER.unsent_acks.extend(self._acks_in_flight)
        self._announcing = False
        self._acks_in_flight = []
        self._taking = None
        self._in_poll = None

    def _brpop_read(self, **options: Any) -> Any:
        queue = self._taking
        if queue is None:
            return super()._brpop_read(**options)
        connection = self.client.connection
        try:
            if self._announcing:
                self.client.parse_response(connection, "SADD")
                self._announcing = False
            while self._acks_in_flight:
                self.client.parse_response(connection, "LREM")
                self._acks_in_flight.pop()
            if not self._closing and not connection.can_read(timeout=0):
                return False  # the acks' replies only: the take's comes with a message or its timeout
            raw = self.client.parse_response(connection, "BLMOVE", **options)
        except self.connection_errors:
            self._unsent()
            connection.disconnect()
            raise
        self._taking = None
        try:
            self._queue_cycle.rotate(queue)  # taken or timed out: the next take waits on the next queue
            if raw is None:
                raise virtual.Empty()
            try:
                payload = loads(bytes_to_str(raw))
                tag = payload["properties"]["delivery_tag"]
            except Exception:
                logger.exception("dropped a message that is not a kombu message: %r", raw[:200])
                HOLDER.ack_later(raw)
                raise virtual.Empty() from None
            HOLDER.held[tag] = raw
            self.connection._deliver(payload, queue)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def close(self) -> None:
        """kombu's, after the acks still due are sent (a worker's warm shutdown)."""
        if HOLDER.unsent_acks:
            try:
                with self.conn_or_acquire() as client:
                    HOLDER.flush_acks(client)
            except Exception:
                unsent = len(HOLDER.unsent_acks)
                logger.warning("could not send %d ack(s) before closing: the next channel sends them", unsent)
        super().close()

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

    def create_publish_batch(self, max_size: int) -> SurvivingPublishBatch:
        return SurvivingPublishBatch(self, max_size, self.publish_patience)

    @property
    def supports_batch_publish(self) -> bool:
        """kombu pipelines a producer's publishes only without a redis-py Retry (a replayed
        pipeline could publish twice): farpool's Retry retries nothing, so it can."""
        kwargs = dict(self.pool.connection_kwargs)
        retry = kwargs.pop("retry", None)
        replays = retry is not None and retry.get_retries() > 0
        return not self.retry_on_timeout and not replays and kombu_redis._batch_publish_retry_safe(kwargs)


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    # Channel's own tuple comes first in the MRO: Sentinel's options (master_name, ...) added back.
    from_transport_options = (*kombu_redis.SentinelChannel.from_transport_options, "publish_patience")


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
