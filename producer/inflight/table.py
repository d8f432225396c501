"""The one table of a pool's work, as CPython's pool has one `_cache`: what is in flight (by result
key, with who receives it), what arrived and nobody collected, which calls are recorded, and what
was abandoned but may still run (draining).

Every result type receives its outcomes through one method, `_set(task_id, meta)` (Receiver):
AsyncResult, MapResult and IMapIterator alike. The table only keeps the books, under one lock: it
reads and deletes nothing on the server. It keeps the listener's subscriptions in step with what it
expects (`subscribe` / `unsubscribe`, called under its lock, so that a key is never unsubscribed
before it was subscribed), so a fake pair of functions is all it needs in a unit test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Subscription = Callable[..., None]  # the listener's subscribe / unsubscribe, given result keys


class Receiver(Protocol):
    def _set(self, task_id: str, meta: dict[str, Any]) -> None:
        """One task's outcome: Celery's meta (status, result, traceback) once it is ready."""


@dataclass(frozen=True)
class Expected:
    task_id: str
    receiver: Receiver
    owned: bool  # sent by this pool: join() waits for it, terminate() revokes it
    queued: bool = True  # sent by a producer (a chord's gather is sent by a worker, at the end)
    since: float = field(default_factory=time.monotonic)


class InFlight:
    """Thread-safe books of one pool's work; join() waits on them (`wait_idle`)."""

    def __init__(self, subscribe: Subscription, unsubscribe: Subscription) -> None:
        self._subscribe, self._unsubscribe = subscribe, unsubscribe
        self._expected: dict[bytes, Expected] = {}
        self._arriving: dict[bytes, Expected] = {}  # claimed by one thread, its receiver running
        self._owned = 0  # owned entries in _expected and _arriving: join() waits for 0
        self._records: set[str] = set()  # calls recorded by this pool and not yet collected
        self._arrived: set[str] = set()  # tasks this pool sent that arrived and nobody collected here
        self._draining: set[bytes] = set()  # abandoned, still queued or running: join() waits for them
        # subscribed as they were sent, not read back: looked for once, a second later, in case the
        # subscription reached the server after the result (another connection, another path)
        self._unverified: list[bytes] = []
        self._verifying: list[bytes] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.closed = False

    # -- expecting -----------------------------------------------------------------------------

    def expect(
        self,
        keys: Mapping[bytes, str],
        receiver: Receiver,
        owned: bool = True,
        record_id: str | None = None,
        unsent: bool = False,
        sent_later: Collection[str] = (),
    ) -> None:
        """Expect these tasks (result key → task id) for `receiver`, and subscribe to them;
        those `sent_later` (by a worker) are not looked for in the queue while awaited."""
        with self._lock:
            if record_id is not None and owned:
                self._records.add(record_id)
            for key, task_id in keys.items():
                if key not in self._expected and owned:
                    self._owned += 1
                self._expected[key] = Expected(task_id, receiver, owned, task_id not in sent_later)
            if keys:
                self._subscribe(*keys)
            if unsent:
                self._unverified.extend(keys)

    def claim(self, key: bytes) -> Expected | None:
        """The entry of a result that just arrived, if expected and not claimed by another thread;
        `done(key, entry)` once its receiver has run."""
        with self._lock:
            claimed = self._forget([key])
            if not claimed:
                return None
            expected = self._arriving[key] = claimed[0]
            if expected.owned:
                self._arrived.add(expected.task_id)
            return expected

    def done(self, key: bytes, expected: Expected) -> None:
        with self._lock:
            del self._arriving[key]
            self._settled(1 if expected.owned else 0)

    def fail(self, keys: Iterable[bytes]) -> list[Expected]:
        """Stop expecting these keys: the caller hands their receivers an error."""
        with self._lock:
            ended = self._forget(keys)
            self._settled(sum(expected.owned for expected in ended))
            return ended

    def _forget(self, keys: Iterable[bytes]) -> list[Expected]:
        """Stop expecting these keys; the caller holds the lock and settles the owned count."""
        gone = {key: self._expected.pop(key) for key in keys if key in self._expected}
        if gone and not self.closed:
            self._unsubscribe(*gone)
        return list(gone.values())

    def _settled(self, count: int) -> None:
        """`count` owned tasks arrived (receivers run) or were abandoned; the caller holds the lock."""
        self._owned -= count
        if not self.busy():
            self._idle.notify_all()

    # -- what is in it -------------------------------------------------------------------------

    def uncollected(self) -> list[str]:
        """The tasks this pool sent whose results it has not collected: in flight, or arrived."""
        with self._lock:
            owned = [expected.task_id for expected in self._expected.values() if expected.owned]
            return [*owned, *self._arrived]

    def waiting(self, keys: set[bytes] | None = None) -> list[Expected]:
        """The entries still expected (only those of `keys`, if given)."""
        with self._lock:
            return [expected for key, expected in self._expected.items() if keys is None or key in keys]

    def keys(self) -> tuple[list[bytes], list[bytes]]:
        """The keys expected and the keys draining, now."""
        with self._lock:
            return list(self._expected), list(self._draining)

    def awaiting(self) -> bool:
        with self._lock:
            return bool(self._expected or self._draining)

    def is_draining(self, key: bytes) -> bool:
        return key in self._draining

    def take_unverified(self) -> list[bytes]:
        """The keys subscribed at least one call ago and still expected, to look for once."""
        with self._lock:
            keys = [key for key in self._verifying if key in self._expected]
            self._verifying, self._unverified = self._unverified, []
            return keys

    # -- collected and abandoned ---------------------------------------------------------------

    def collected(self, task_ids: Sequence[str], record_id: str | None) -> None:
        with self._lock:
            self._arrived.difference_update(task_ids)
            if record_id is not None:
                self._records.discard(record_id)

    def abandon(self, keys: Sequence[bytes], task_ids: Sequence[str]) -> tuple[list[str], set[str]]:
        """Stop expecting these tasks; their recorded calls and the ones that arrived uncollected."""
        with self._lock:
            gone = self._forget(keys)
            self._settled(sum(expected.owned for expected in gone))
            records = [task_id for task_id in task_ids if task_id in self._records]
            self._records.difference_update(records)
            arrived = {task_id for task_id in task_ids if task_id in self._arrived}
            self._arrived.difference_update(arrived)
            return records, arrived

    def drain(self, keys: list[bytes]) -> bool:
        """Wait for these abandoned tasks to end (join() waits too); False once closed."""
        with self._lock:
            if self.closed:
                return False
            self._draining.update(keys)
            self._subscribe(*keys)
            return True

    def drained(self, keys: Iterable[bytes]) -> set[bytes]:
        """These keys' tasks have ended: those that were draining."""
        with self._lock:
            ended = self._draining.intersection(keys)
            if not ended:
                return ended
            self._draining.difference_update(ended)
            if not self.closed:
                self._unsubscribe(*ended)
            if not self.busy():
                self._idle.notify_all()
            return ended

    def stop_draining(self) -> None:
        """The server is given up on: nothing drains any more."""
        with self._lock:
            self._draining.clear()

    # -- join and close ------------------------------------------------------------------------

    def busy(self) -> bool:
        return not self.closed and (self._owned > 0 or bool(self._draining))

    def wait_idle(self) -> None:
        """Block until every task this pool sent has arrived (receivers run) or, if abandoned,
        has ended (ran, or was skipped as revoked)."""
        with self._idle:
            self._idle.wait_for(lambda: not self.busy())

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._idle.notify_all()
