"""The exceptions farpool raises in the producer."""

from __future__ import annotations

import builtins
import multiprocessing


class TimeoutError(multiprocessing.TimeoutError, builtins.TimeoutError):
    """get(timeout) ran out; both the builtin and multiprocessing's TimeoutError catch it."""


class FarpoolError(RuntimeError):
    """A problem with the cluster rather than with a task: the message says what to do."""


class BrokerUnavailable(FarpoolError):
    """The broker URL does not answer."""

    @classmethod
    def silent_for(
        cls, server: str, silent: float, limit: float, error: Exception, kept: int
    ) -> BrokerUnavailable:
        return cls(
            f"the broker at {server} has not answered for {silent:.0f} s (FARPOOL_BROKER_TIMEOUT="
            f"{limit:g}; last error: {error}): what was sent stays queued or running on the "
            f"workers, and its results are kept for {kept} s"
        )


class LostTasks(BrokerUnavailable):
    """The broker no longer has tasks it had accepted: a failover to a replica that had not
    received them, or a restart that kept nothing."""

    @classmethod
    def after_change(cls, server: str, missing: int) -> LostTasks:
        return cls(
            f"the broker at {server} changed (a failover or a restart) and no longer has {missing} "
            "of the tasks sent to it: Redis replicates asynchronously, so a replica can take over "
            "without the last writes (see Deploying, Redis Sentinel, in the docs: docs/deploying.md)"
        )

    @classmethod
    def nowhere(cls, server: str, missing: int) -> LostTasks:
        return cls(
            f"the broker at {server} no longer has {missing} of the tasks sent to it: not queued, "
            "held by no worker, no result (removed by `celery purge`, a FLUSHDB, or a restart "
            "that kept nothing)"
        )


class NoWorkersError(FarpoolError):
    """No worker consumes farpool's queue."""


class UnknownResult(FarpoolError, LookupError):
    """No result is known under this id: never sent, already collected, or expired."""

    def __init__(self, result_id: str, kept_seconds: int) -> None:
        super().__init__(
            f"no result is known under id {result_id!r}: it was never sent, was already "
            f"collected, or expired (results are kept {kept_seconds} s)"
        )
