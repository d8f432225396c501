"""Where an array's bytes travel: a Redis hash per task, beside its message and its result.

The "claim check" pattern: a message stays small JSON (readable in Flower), and the bytes of
the arrays in a task's arguments and in its result go into one hash, `farpool-data-<task id>`,
as binary values (fields a0, a1, ... for arguments, r0, r1, ... for the result). The producer
writes the arguments' hash before it sends the message; the worker writes the result's fields
in the same atomic script that stores the result (tasks/backend.py), so a dropped result leaves
no bytes behind; whoever collects the result deletes the hash with it. Every hash expires with
the results (FARPOOL_RESULT_EXPIRES) at the latest.

A value sent once with `pool.put(value)` is a hash of its own, `farpool-data-<handle id>`: its
JSON in field `value`, its arrays beside it. A worker process reads it once and keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tasks.arrays import ArrayRef, array_from
from tasks.errors import RefusedTask
from tasks.shared_memory import read_shared
from tasks.wire import DATA_PREFIX

HANDLE_VALUE = "value"
ARGUMENT_FIELDS = "a"
RESULT_FIELDS = "r"
# Bytes per pipeline when storing: a round trip per few hundred MB, not per array.
PIPELINE_BYTES = 64 * 1024 * 1024


def data_key(owner: str) -> str:
    """The hash holding the arrays of task (or handle) `owner`."""
    return DATA_PREFIX + owner


def data_keys(owners: Iterable[str]) -> list[str]:
    return [data_key(owner) for owner in owners]


def claim(refs: Sequence[ArrayRef], owner: str, prefix: str) -> list[tuple[str, Any]]:
    """Give these refs their place in `owner`'s hash; the (field, bytes) pairs to store there."""
    key = data_key(owner)
    pairs = []
    for index, ref in enumerate(refs):
        ref.key, ref.field = key, f"{prefix}{index}"
        pairs.append((ref.field, ref.data))
    return pairs


def store(client: Any, owner: str, pairs: Sequence[tuple[str, Any]], expires: int) -> None:
    """Write these (field, bytes) pairs into `owner`'s hash, in pipelines of PIPELINE_BYTES."""
    key = data_key(owner)
    pending: dict[str, Any] = {}
    size = 0
    for field, data in pairs:
        pending[field] = data
        size += len(data)
        if size >= PIPELINE_BYTES:
            _write(client, key, pending, expires)
            pending, size = {}, 0
    if pending:
        _write(client, key, pending, expires)


def _write(client: Any, key: str, mapping: dict[str, Any], expires: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, expires)
        pipe.execute()


def fetch(
    client: Any, refs: Sequence[ArrayRef], max_payload: int, writable: bool = True, mapped: bool = False
) -> list[Any]:
    """The arrays these refs describe: from the sender's memory on the same host, the others read
    from Redis in one round trip. RefusedTask for bytes that are gone (the call was collected,
    abandoned or expired, or its sender ended) or do not match their description."""
    for ref in refs:
        if ref.nbytes > max_payload:
            raise RefusedTask(
                f"an array of {ref.nbytes:,} bytes arrived, over FARPOOL_MAX_PAYLOAD ({max_payload:,})"
            )
    arrays: list[Any] = [None] * len(refs)
    remote = []
    for index, ref in enumerate(refs):
        view = read_shared(ref.shared, ref.nbytes, mapped, writable) if ref.shared is not None else None
        if view is None:
            remote.append(index)
        else:
            arrays[index] = array_from(ref, view, writable)
            if not writable:
                arrays[index].flags.writeable = False
    if remote:
        with client.pipeline(transaction=False) as pipe:
            for index in remote:
                pipe.hget(refs[index].key, refs[index].field)
            replies = pipe.execute()
        for index, data in zip(remote, replies, strict=True):
            ref = refs[index]
            if data is None:
                shared = " (shared by a process on another host, or one that has ended)" if ref.shared else ""
                raise RefusedTask(
                    f"the bytes of an array ({ref.key} {ref.field}){shared} are gone: its call was "
                    "collected or abandoned, its sender ended, or it expired"
                )
            arrays[index] = array_from(ref, data, writable)
    return arrays


class HandleDeleted(LookupError):
    """A task received a `pool.put` handle whose value was deleted (or expired)."""


class Handle:
    """A value stored once by `pool.put`; passed in a call, the task receives the value itself."""

    __slots__ = ("id",)

    def __init__(self, handle_id: str) -> None:
        self.id = handle_id

    @property
    def key(self) -> str:
        return data_key(self.id)

    def __json__(self) -> dict[str, Any]:
        return {"id": self.id}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<farpool handle {self.id}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Handle, (self.id,))
