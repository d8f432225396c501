"""What crosses between a producer and its workers through Redis, named once: every key prefix,
the remote-control commands, the call record, a timed chunk's reply.

Both sides import these names; neither writes a prefix, a command or a record's shape of its own
(tasks/contract.py holds the executors' names and arguments). Imported by both sides; it builds
no app and does no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

# -- Redis keys and channels: everything farpool writes besides Celery's and kombu's own ---------

# A map_async's or apply_async's record (CallRecord, JSON) under the call's id, until collected:
# any process finds the call by it, and the gather task reads its chunk ids there.
RECORD_PREFIX = "farpool-call-"
DATA_PREFIX = "farpool-data-"  # a hash: the arrays of one task or `put` handle (tasks/blobs.py)
DISCARDED = "farpool-discarded"  # a sorted set: result keys whose store is dropped (tasks/backend.py)
TWIN_PREFIX = "farpool-twin-"  # a task whose message was redelivered: two runs may store
WATCH_KEY = "farpool-watched"  # a monitor watches: task events on (tasks/watch.py)
PRESENCE_PREFIX = "farpool-workers:"  # the workers announced on a queue (tasks/presence.py)
SYNC_PREFIX = "farpool-sync:"  # locks, semaphores, events and queues (tasks/coordination)
LISTENER_CHANNEL_PREFIX = "farpool-ledger-"  # a pool listener's own channel: probes and wake-ups
UNACKED = "unacked"  # kombu's Redis transport: what workers took and have not acked (unacked_key)
# farpool's consume path (tasks/inflight.py): the consumer processes, each one's in-flight list
# (what it took and has not acked) and its liveness key.
CONSUMERS = "farpool-consumers"
INFLIGHT_PREFIX = "farpool-inflight:"
ALIVE_PREFIX = "farpool-alive:"
KEY_BATCH = 5_000  # keys per DEL, MGET or ZREM, and per call of the discard script

# Not Redis: the names of same-host memory files (tasks/shared_memory.py), and the message
# header by which a producer asks for a reply in memory (tasks/held.py).
SHARED_MEMORY_PREFIX = "farpool-"
SHARED_MEMORY_HEADER = "farpool_shm"

# -- remote-control commands (tasks/control.py registers them, producers broadcast them) ---------

INFO_COMMAND = "farpool_info"  # inspect: the worker's description (tasks/presence.py's describe)
REVOKE_COMMAND = "farpool_revoke"  # revoke without storing REVOKED: arguments task_id, terminate
WATCH_COMMAND = "farpool_watch"  # a monitor opened: task events on now


class Memory(TypedDict):
    total: int
    available: int


class WorkerDescription(TypedDict, total=False):
    """A worker as it describes itself: its announcement (tasks/presence.py) and its reply to
    INFO_COMMAND, which producers read (producer/local/cluster.py's WorkerInfo)."""

    name: str  # the node name, name@host
    host: str
    machine: str  # a producer with the same id shares arrays with it in memory files
    pool: str  # prefork, threads, solo...
    processes: int
    queues: list[str]
    tasks: list[str]  # its registered tasks, Celery's and farpool's own left out
    allowlist: list[str]  # the modules whose plain functions it calls by reference
    running: list[str]  # the function each busy process runs
    cores: int  # logical CPUs
    load: list[float]  # 1, 5 and 15 minutes
    physical_cores: int
    logical_cpus: int
    cpu_model: str
    caches: dict[str, int]  # bytes by name: L1d, L1i, L2, L3
    memory: Memory


def record_key(call_id: str) -> str:
    return RECORD_PREFIX + call_id


class CallRecord(TypedDict):
    """A call's record: its task's name, and a map_async's chunk ids (None for one task)."""

    task: str | None
    chunks: list[str] | None


def dump_record(record: CallRecord) -> str:
    return json.dumps(record)


def load_record(text: str | bytes) -> CallRecord:
    found = json.loads(text)
    return CallRecord(task=found.get("task"), chunks=found.get("chunks"))


# -- a chunk's reply -------------------------------------------------------------------------------


def timed_reply(elapsed: float, values: Any) -> list[Any]:
    """What a chunk sent with `timed` (imap's) returns: seconds computing, then its values."""
    return [elapsed, values]


def read_timed_reply(result: Sequence[Any]) -> tuple[float, list[Any]]:
    """(seconds computing, values) of a timed chunk's stored result."""
    elapsed, values = result
    return float(elapsed), list(values)
