"""Whether the result backend still answers a ledger's listener, and since when it has not.

A host whose cable is pulled closes no socket: a pub/sub connection just falls silent. While
results are awaited, the listener publishes a probe on its own channel every PROBE_INTERVAL
seconds; a probe that has not come back within STALE_AFTER seconds means the connection is dead
(reconnect), and a server that has answered nothing for `give_up_after` seconds is given up on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PROBE_INTERVAL = 1.0
STALE_AFTER = 5.0


class BrokerWatch:
    def __init__(self, give_up_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.give_up_after = give_up_after
        self._clock = clock
        self._next_probe = 0.0
        self._probe_unanswered_since: float | None = None
        self._unreachable_since: float | None = None

    def heard(self) -> None:
        """Something came back from the server: it answers."""
        self._probe_unanswered_since = None
        self._unreachable_since = None

    def probe_due(self) -> bool:
        """True when a probe should be sent now (the caller sends it)."""
        now = self._clock()
        if now < self._next_probe:
            return False
        self._next_probe = now + PROBE_INTERVAL
        if self._probe_unanswered_since is None:
            self._probe_unanswered_since = now
        return True

    def stale(self) -> bool:
        """True when a probe has gone unanswered for too long: the connection is dead."""
        since = self._probe_unanswered_since
        return since is not None and self._clock() - since > STALE_AFTER

    def failed(self) -> float:
        """A connection attempt or a command failed: seconds since the server last answered."""
        now = self._clock()
        self._probe_unanswered_since = None
        if self._unreachable_since is None:
            self._unreachable_since = now - (STALE_AFTER if self._next_probe else 0.0)
        return now - self._unreachable_since

    @property
    def given_up(self) -> bool:
        """True once the server has not answered for `give_up_after` seconds, until it does."""
        since = self._unreachable_since
        return since is not None and self._clock() - since >= self.give_up_after

    def idle(self) -> None:
        """Nothing is awaited: stop probing until something is."""
        self._next_probe = 0.0
        self._probe_unanswered_since = None
