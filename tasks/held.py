"""Same-host results: a task's result arrays kept in a memory file of the worker process that made
them, until the producer that waits for them has read them (tasks/shared_memory.py).

A producer asks for this in a message header (REPLY_HEADER: its machine and pid) only for calls
it alone collects (map, imap, apply): a recorded call can be collected by another process later,
so its arrays go to Redis. The worker process closes a file at the start of its next task once
the result is collected (its key is gone) or the producer has ended; when the process itself
ends cleanly, it copies what it still holds to Redis first, where the producer looks next.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tasks.arrays import ArrayRef
from tasks.blobs import store
from tasks.shared_memory import Segment, machine_id
from tasks.wire import SHARED_MEMORY_HEADER

REPLY_HEADER = SHARED_MEMORY_HEADER


def reply_header() -> dict[str, Any]:
    """What a producer on this machine puts in a message to receive its arrays in memory files."""
    return {REPLY_HEADER: {"machine": machine_id(), "pid": os.getpid()}}


def wants_shared(reply: Any) -> bool:
    """The message came from a live producer on this machine that reads memory files."""
    if not isinstance(reply, dict) or not machine_id() or reply.get("machine") != machine_id():
        return False
    pid = reply.get("pid")
    return type(pid) is int and pid > 0 and os.path.exists(f"/proc/{pid}")


@dataclass
class Held:
    segment: Segment
    result_key: Any
    producer_pid: int
    pairs: list[tuple[str, int, int]]  # field, offset, length: for the copy to Redis at exit


_held: dict[str, Held] = {}


def hold(task_id: str, refs: Sequence[ArrayRef], result_key: Any, producer_pid: int) -> None:
    """Put these result arrays' bytes in a memory file held for the producer; say so in each ref."""
    segment = Segment([ref.data for ref in refs])
    pairs = []
    for ref, offset in zip(refs, segment.offsets, strict=True):
        ref.shared = segment.where(offset)
        ref.data = None
        pairs.append((str(ref.field), offset, ref.nbytes))
    _held[task_id] = Held(segment, result_key, producer_pid, pairs)


def holding() -> bool:
    return bool(_held)


def sweep(client: Any) -> None:
    """Close the files whose results were collected or dropped, or whose producer has ended."""
    if not _held:
        return
    entries = list(_held.items())
    with client.pipeline(transaction=False) as pipe:
        for _, held in entries:
            pipe.exists(held.result_key)
        stored = pipe.execute()
    for (task_id, held), exists in zip(entries, stored, strict=True):
        if not exists or not os.path.exists(f"/proc/{held.producer_pid}"):
            held.segment.close()
            del _held[task_id]


def spill(client: Any, expires: int) -> None:
    """This process ends: copy what it holds to the results' Redis hashes, then close the files."""
    while _held:
        task_id, held = _held.popitem()
        pairs = [(field, held.segment.read(offset, length)) for field, offset, length in held.pairs]
        store(client, task_id, pairs, expires)
        held.segment.close()
