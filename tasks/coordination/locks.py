"""Lock, Semaphore and BoundedSemaphore across the cluster, with multiprocessing's API.

A slot held by a process that dies is freed when its lease ends (`lease` seconds after it was
taken; DEFAULT_LEASE by default), never held for ever. A live holder that needs longer passes a
longer lease or calls `extend(seconds)`. A release wakes one waiter through the object's wake
list; a waiter also wakes when the earliest lease would end.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import LockNotOwnedError
from redis.lock import Lock as RedisLock

from tasks.coordination.base import DEFAULT_LEASE, Deadline, Shared, checked_lease
from tasks.lua import script


class _WakingLock(RedisLock):
    """redis-py's Lock, whose release also wakes a waiter (its own acquire polls with sleeps)."""

    def __init__(self, client: Any, name: str, wake: str, timeout: float) -> None:
        super().__init__(client, name, timeout=timeout, thread_local=False)
        self.wake = wake

    def do_release(self, expected_token: Any) -> None:
        keep = int(self.timeout or 60) + 60
        if not script("lock_release")(self.redis, [self.name, self.wake], [expected_token, keep]):
            raise LockNotOwnedError("the lock's lease ended before its release", lock_name=self.name)


class Lock(Shared):
    """A cluster-wide multiprocessing.Lock: `acquire(block=True, timeout=None)`, `release()`, `with`."""

    kind = "lock"

    def __init__(self, name: str, lease: float = DEFAULT_LEASE, *, app: Any = None) -> None:
        super().__init__(name, app)
        self.lease = checked_lease(lease)
        self._held: _WakingLock | None = None

    def _redis_lock(self) -> _WakingLock:
        return _WakingLock(self.client, self.key(), self.key(":wake"), self.lease)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        lock = self._redis_lock()
        token = uuid.uuid4().hex.encode()
        deadline = Deadline(timeout if block else 0)
        while True:
            if lock.do_acquire(token):
                lock.local.token = token
                self._held = lock
                return True
            if not block or deadline.passed():
                return False
            left = self.client.pttl(lock.name)  # the holder's lease: a dead holder frees it then
            self.wait_for_wake(deadline, cap=min(2.0, left / 1000) if left > 0 else 0.01)

    def release(self) -> None:
        lock, self._held = self._held, None
        if lock is None:
            raise ValueError(f"{self!r} released but not acquired (by this object)")
        try:
            lock.release()
        except LockNotOwnedError:
            raise ValueError(f"{self!r} released after its {self.lease:g} s lease ended") from None

    def extend(self, seconds: float) -> None:
        """Keep holding for `seconds` more than the lease left."""
        if self._held is None:
            raise ValueError(f"{self!r} is not held by this object")
        self._held.extend(checked_lease(seconds))

    def locked(self) -> bool:
        return bool(self.client.exists(self.key()))

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __json__(self) -> dict[str, Any]:
        return {"name": self.name, "lease": self.lease}


class Semaphore(Shared):
    """A cluster-wide multiprocessing.Semaphore of `value` slots, each held for at most `lease` s.

    As multiprocessing's, a release by an object that holds no slot adds one (BoundedSemaphore
    raises instead). Every user of a name must give the same value: a semaphore passed to a task
    carries its own.
    """

    kind = "semaphore"
    bounded = False

    def __init__(self, name: str, value: int = 1, lease: float = DEFAULT_LEASE, *, app: Any = None) -> None:
        super().__init__(name, app)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{type(self).__name__} value {value!r}: a whole number, 0 or more")
        self.value = value
        self.lease = checked_lease(lease)
        self._tokens: list[str] = []

    def _keys(self) -> list[str]:
        return [self.key(":holders"), self.key(":extra"), self.key(":wake")]

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        token = uuid.uuid4().hex
        deadline = Deadline(timeout if block else 0)
        keys = self._keys()
        while True:
            if script("semaphore_take")(self.client, keys[:2], [token, self.value, self.lease]):
                self._tokens.append(token)
                return True
            if not block or deadline.passed():
                return False
            left = int(script("semaphore_next_end")(self.client, keys[:1]))
            self.wait_for_wake(deadline, cap=min(2.0, left / 1000) if left > 0 else 2.0)

    def release(self) -> None:
        token = self._tokens.pop(0) if self._tokens else ""
        keep = int(self.lease) + 60
        if not script("semaphore_give")(self.client, self._keys(), [token, int(self.bounded), keep]):
            raise ValueError(f"{self!r} released too many times")

    def get_value(self) -> int:
        """The free slots now."""
        holders, extra, _ = self._keys()
        return int(script("semaphore_free")(self.client, [holders, extra], [self.value]))

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __json__(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "lease": self.lease}


class BoundedSemaphore(Semaphore):
    """A Semaphore whose release without a held slot raises ValueError, as multiprocessing's."""

    bounded = True
