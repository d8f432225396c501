"""What a consumer holds: one in-flight list per consumer process, and its liveness key.

kombu takes a message with BRPOP, then records it as unacked with a second command (MULTI / ZADD /
HSET): a worker main process or a broker killed between the two loses the message, and what
a dead worker held comes back only after the visibility timeout (3600 s by default), whatever
killed it. farpool takes with `BLMOVE queue -> farpool-inflight:<consumer>`, so that a message is
at every instant in its queue or in one consumer's in-flight list (Redis moves it in one
command, and the AOF logs that one command); the ack is one `LREM` of the same bytes.

Each consumer process refreshes `farpool-alive:<consumer>` (expires after ALIVE_TTL) every
second and is listed in the `farpool-consumers` set. Every consumer sweeps the set every second:
the in-flight list of a consumer whose key has been gone for CONFIRM_SECONDS (seen twice, so
that a broker restart, which expires every key at once, gives the living time to refresh) goes
back to the head of its queue, marked redelivered, one message at a time under a script that
moves it only if it is still there and its consumer still silent. A live worker's long chunk is
never returned, whatever its length; a dead one's within ALIVE_TTL + CONFIRM_SECONDS + a sweep.
A consumer back from an outage of the broker waits RECOVERY_GRACE before it sweeps, so that
its peers, reconnecting too, refresh first (a chunk returned from a live peer would run twice,
its second result dropped by the twin marks of tasks/backend.py).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from tasks.lua import script
from tasks.wire import ALIVE_PREFIX, CONSUMERS, INFLIGHT_PREFIX

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0  # how often a consumer refreshes its liveness key, and sweeps
ALIVE_TTL = 4  # seconds a liveness key outlives its last refresh
CONFIRM_SECONDS = 2.0  # a consumer silent this long after a sweep first saw it silent is gone
RECOVERY_GRACE = 10.0  # a consumer back from an outage sweeps only after this long


def inflight_key(consumer: str) -> str:
    return INFLIGHT_PREFIX + consumer


def alive_key(consumer: str) -> str:
    return ALIVE_PREFIX + consumer


_identity: tuple[int, str] | None = None


def consumer_id() -> str:
    """This process's consumer name: host, pid and a random part (a new one after a fork)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
    return _identity[1]


def redelivered(raw: bytes | str) -> str:
    """The message as it goes back on its queue: marked redelivered, as kombu marks a restore."""
    payload = loads(bytes_to_str(raw))
    try:
        payload["headers"]["redelivered"] = True
        payload["properties"]["delivery_info"]["redelivered"] = True
    except (KeyError, TypeError):
        pass
    return str(dumps(payload))


def destination(channel: Any, raw: bytes | str) -> str | None:
    """The queue a held message goes back to (kombu's own lookup of its exchange and routing key)."""
    try:
        payload = loads(bytes_to_str(raw))
        delivery = payload["properties"]["delivery_info"]
        queues = channel._lookup(delivery["exchange"], delivery["routing_key"])
    except Exception:
        logger.exception("a held message names no queue: left in its in-flight list")
        return None
    return str(channel._q_for_pri(queues[0], 0)) if queues else None


class Holder:
    """One consumer process's side: its liveness, its acks that could not be sent, its sweeps."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """A forked child holds nothing (its parent's acks are the parent's to send)."""
        self.refreshed_at = float("-inf")
        self.silent_since: dict[str, float] = {}
        self.unsent_acks: list[bytes] = []
        self.unsent_returns: list[tuple[bytes, bool]] = []  # held messages to put back, and where
        self.held: dict[Any, bytes] = {}  # delivery tag: the message's bytes in the in-flight list
        self.cut_off = False  # the last refresh failed: the broker, or the link to it, was down
        self.sweep_from = float("-inf")
        # A take's reply was lost with its connection: the BLMOVE may have moved a message into
        # this consumer's in-flight list that this process never received (reclaim_unknown).
        self.reply_lost = False

    @property
    def consumer(self) -> str:
        return consumer_id()

    @property
    def inflight(self) -> str:
        return inflight_key(self.consumer)

    def due(self) -> bool:
        return time.monotonic() - self.refreshed_at >= REFRESH_SECONDS

    def tick(self, client: Any, channel: Any) -> None:
        """Refresh this consumer's liveness, send the acks that failed, sweep the silent consumers."""
        if not self.due():
            return
        try:
            self.refresh(client)
        except Exception:
            self.cut_off = True
            raise
        if self.cut_off:
            # Back from an outage: the other consumers may still be reconnecting (a restarted
            # broker has expired every liveness key at once); give them time before sweeping.
            self.cut_off = False
            self.sweep_from = time.monotonic() + RECOVERY_GRACE
            self.silent_since.clear()
        self.flush_acks(client)
        self.flush_returns(client, channel)
        if time.monotonic() < self.sweep_from:
            return
        try:
            self.sweep(client, channel)
        except channel.connection_errors:
            self.silent_since.clear()  # seen silent from a broken link: look again from scratch
            raise
        except Exception:
            logger.exception("the sweep for gone consumers failed; trying again in a second")

    def refresh(self, client: Any) -> None:
        consumer = self.consumer
        with client.pipeline(transaction=False) as pipe:
            pipe.sadd(CONSUMERS, consumer).set(alive_key(consumer), 1, ex=ALIVE_TTL)
            pipe.execute()
        self.refreshed_at = time.monotonic()

    def ack_later(self, raw: bytes) -> None:
        """Acknowledge a held message with the next take (tasks/transport.py sends the LREMs in
        the same write as its BLMOVE), or within a second (the next tick), whichever comes first.
        An LREM sent twice (its reply lost with a connection) removes nothing the second time."""
        self.unsent_acks.append(raw)

    def take_acks(self) -> list[bytes]:
        acks, self.unsent_acks = self.unsent_acks, []
        return acks

    def flush_acks(self, client: Any) -> None:
        while self.unsent_acks:
            client.lrem(self.inflight, 1, self.unsent_acks[-1])
            self.unsent_acks.pop()

    def flush_returns(self, client: Any, channel: Any) -> None:
        while self.unsent_returns:
            raw, last = self.unsent_returns[-1]
            self.give_back(client, channel, raw, last)
            self.unsent_returns.pop()

    def give_back(self, client: Any, channel: Any, raw: bytes, last: bool = False) -> bool:
        """Put a message this consumer holds back on its queue (a reject, a shutdown), redelivered."""
        queue = destination(channel, raw)
        if queue is None:
            return False
        keys = (self.inflight, queue, alive_key(self.consumer))
        moved = script("inflight_return")(client, keys, [raw, redelivered(raw), int(last), 0])
        return bool(moved == 1)

    def reclaim_unknown(self, client: Any, channel: Any) -> int:
        """Put back on their queues the messages in this consumer's in-flight list that this
        process does not hold: takes whose reply was lost. Alive, it would hold them for ever,
        unseen by the sweeps (they return only a gone consumer's). Called between takes."""
        known = {*self.held.values(), *self.unsent_acks, *(raw for raw, _ in self.unsent_returns)}
        reclaimed = 0
        for raw in client.lrange(self.inflight, 0, -1):
            if raw not in known:
                reclaimed += int(self.give_back(client, channel, raw))
        self.reply_lost = False
        if reclaimed:
            logger.warning(
                "put back %d message(s) whose take's reply was lost with its connection", reclaimed
            )
        return reclaimed

    def sweep(self, client: Any, channel: Any) -> int:
        """Return what consumers gone for CONFIRM_SECONDS held; the number of messages returned."""
        me = self.consumer
        others = [bytes_to_str(member) for member in client.smembers(CONSUMERS)]
        others = [consumer for consumer in others if consumer != me]
        if not others:
            self.silent_since.clear()
            return 0
        alive = client.mget([alive_key(consumer) for consumer in others])
        now = time.monotonic()
        returned = 0
        for consumer, value in zip(others, alive, strict=True):
            if value is not None:
                self.silent_since.pop(consumer, None)
                continue
            first = self.silent_since.setdefault(consumer, now)
            if now - first >= CONFIRM_SECONDS:
                returned += self.return_held(client, channel, consumer)
        for consumer in set(self.silent_since) - set(others):
            del self.silent_since[consumer]
        return returned

    def return_held(self, client: Any, channel: Any, consumer: str) -> int:
        """Put a silent consumer's in-flight messages back at the head of their queues, oldest first."""
        held, alive = inflight_key(consumer), alive_key(consumer)
        returned = 0
        for raw in client.lrange(held, 0, -1):  # newest first: the oldest ends up at the head
            queue = destination(channel, raw)
            if queue is None:
                continue
            moved = script("inflight_return")(client, [held, queue, alive], [raw, redelivered(raw), 0, 1])
            if moved == -1:
                return returned  # it came back
            returned += int(moved == 1)
        if returned:
            logger.warning("returned %d message(s) held by %s (gone) to their queue", returned, consumer)
        if script("inflight_forget")(client, [CONSUMERS, held, alive], [consumer]):
            self.silent_since.pop(consumer, None)
        return returned


def held_messages(client: Any) -> list[bytes]:
    """Every message some consumer holds (taken, not yet acknowledged), newest first per consumer."""
    consumers = [bytes_to_str(member) for member in client.smembers(CONSUMERS)]
    with client.pipeline(transaction=False) as pipe:
        for consumer in consumers:
            pipe.lrange(inflight_key(consumer), 0, -1)
        return [raw for held in pipe.execute() for raw in held]
