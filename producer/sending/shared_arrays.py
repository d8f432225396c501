"""A pool's same-host arrays: the memory files holding the bytes of the calls it sent, each kept
until its call is collected or abandoned (tasks/shared_memory.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery import Celery

from tasks.arrays import ArrayRef
from tasks.blobs import store
from tasks.presence import live_workers
from tasks.shared_memory import Segment, available, machine_id

# Open memory files at most: past it, a call's arrays go through Redis (a descriptor each).
MAX_SEGMENTS = 256
WORKERS_FRESH = 2.0  # seconds a look at the announced workers is trusted (they announce every 2 s)


def worker_machines(app: Celery, queue: str) -> list[str]:
    """The machine of each worker announced on `queue` ("" for one that does not say)."""
    client = app.backend.client  # type: ignore[attr-defined]
    return [str(found.get("machine", "")) for found in live_workers(client, queue)]


class SharedArrays:
    """Memory files by the task that owns them; `wanted()` says whether to use one at all."""

    def __init__(self, live_machines: Callable[[], list[str]], enabled: bool = True) -> None:
        self._live_machines = live_machines
        self._enabled = enabled
        self._segments: dict[str, list[tuple[Segment, list[ArrayRef]]]] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._same_host = False
        self._checked_at = -WORKERS_FRESH

    def wanted(self) -> bool:
        """True when every announced worker is on this machine (and there is at least one)."""
        if not self._enabled or not available() or self._count >= MAX_SEGMENTS:
            return False
        now = time.monotonic()
        if now - self._checked_at >= WORKERS_FRESH:
            try:
                machines = self._live_machines()
            except (redis.ConnectionError, redis.TimeoutError):
                return self._same_host  # the last answer, while the broker restarts
            self._same_host = bool(machines) and all(machine == machine_id() for machine in machines)
            self._checked_at = now
        return self._same_host

    def share(self, owner: str, refs: Sequence[ArrayRef]) -> None:
        """Put these refs' bytes in one memory file kept for `owner`, and say so in each ref."""
        segment = Segment([ref.data for ref in refs])
        for ref, offset in zip(refs, segment.offsets, strict=True):
            ref.shared = segment.where(offset)
        with self._lock:
            self._segments.setdefault(owner, []).append((segment, list(refs)))
            self._count += 1

    def release(self, owners: Sequence[str]) -> None:
        """These calls were collected or abandoned: their memory files go."""
        with self._lock:
            gone = [self._segments.pop(owner, []) for owner in owners]
            self._count -= sum(len(segments) for segments in gone)
        for segments in gone:
            for segment, _ in segments:
                segment.close()

    def spill(self, client: Any, expires: int) -> None:
        """Copy every kept array into Redis, for workers that read it after this process ends
        (`pool.detach()`), then close the files."""
        with self._lock:
            kept, self._segments, self._count = self._segments, {}, 0
        for owner, segments in kept.items():
            for segment, refs in segments:
                pairs = [(str(ref.field), segment.read(ref.shared["at"], ref.nbytes)) for ref in refs]
                store(client, owner, pairs, expires)
                segment.close()

    def close(self) -> None:
        with self._lock:
            kept, self._segments, self._count = self._segments, {}, 0
        for segments in kept.values():
            for segment, _ in segments:
                segment.close()
