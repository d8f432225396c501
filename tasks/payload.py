"""Arrays out of a value before it is sent, and back into it once it has arrived.

`externalize` walks a value (lists, tuples, dicts, sets, a chunk's Values) and replaces each
NumPy array, and each NumPy scalar JSON cannot carry exactly, by an ArrayRef holding its bytes
(tasks/arrays.py); the caller stores those bytes (tasks/blobs.py) before the message goes.
`resolve` does the opposite on arrival: it reads every ArrayRef's bytes in one round trip and
puts the arrays in their places, and a `pool.put` handle's value in the handle's place.

Both sides skip the walk when there is nothing to do: without NumPy imported no value can hold
an array, and decoding counts the references it met (tasks/encoding.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task

from tasks import encoding
from tasks.arrays import ArrayRef, Refused, inline_scalar_types, numpy_module, outgoing_ref, scalar_tag
from tasks.blobs import (
    ARGUMENT_FIELDS,
    HANDLE_VALUE,
    RESULT_FIELDS,
    Handle,
    HandleDeleted,
    claim,
    data_key,
    fetch,
    store,
)
from tasks.errors import RefusedTask
from tasks.held import REPLY_HEADER, hold, sweep, wants_shared

# The (field, bytes) pairs of each task's result arrays, kept from the task's return until its
# result is stored with them (tasks/backend.py), then dropped at the task's end.
pending_results: dict[str, list[tuple[str, Any]]] = {}
# A worker process's `pool.put` values, read once each: the most recent HANDLES_KEPT.
HANDLES_KEPT = 16
HANDLES_CHECKED_EVERY = 1.0  # seconds between looks for kept values whose handle was deleted
_handles: dict[str, Any] = {}
_handles_checked_at = 0.0


def externalize(value: Any, max_payload: int, where: str) -> tuple[Any, list[ArrayRef]]:
    """`value` with its arrays replaced by ArrayRefs, and those refs in order.

    TypeError for an array of Python objects, ValueError for one over `max_payload` bytes;
    each names `where` the value is ("item 3", "the result of ...").
    """
    np = numpy_module()
    if np is None or type(value) in encoding.SCALARS or type(value) in inline_scalar_types():
        return value, []
    refs: list[ArrayRef] = []

    def out(array: Any) -> ArrayRef:
        ref = outgoing_ref(array, max_payload, where)
        refs.append(ref)
        return ref

    return _replace(value, np, out), refs


def _replace(value: Any, np: Any, out: Callable[[Any], Any]) -> Any:
    kind = type(value)
    if kind in encoding.SCALARS or kind in inline_scalar_types():
        return value
    if kind is list:
        return value if encoding.all_scalars(value) else [_replace(item, np, out) for item in value]
    if kind is tuple:
        return value if encoding.all_scalars(value) else tuple(_replace(item, np, out) for item in value)
    if kind is dict:
        return {key: _replace(item, np, out) for key, item in value.items()}
    if kind is encoding.Values:
        return encoding.Values(_replace(value.items, np, out))
    if isinstance(value, np.ndarray):
        return out(value)
    if isinstance(value, np.generic) and scalar_tag(value) is None:
        return out(value)
    return value  # sets hold no arrays (unhashable); other values travel as JSON does


def externalize_items(items: list[Any], max_payload: int) -> tuple[list[Any], list[list[ArrayRef]]]:
    """Each item externalized, and each item's refs (empty lists when no item holds an array)."""
    np = numpy_module()
    if np is None or encoding.SCALARS.union(inline_scalar_types()).issuperset(map(type, items)):
        return items, []
    pairs = [externalize(item, max_payload, f"item {index}") for index, item in enumerate(items)]
    refs = [item_refs for _, item_refs in pairs]
    if not any(refs):
        return [item for item, _ in pairs], []
    return [item for item, _ in pairs], refs


def encode_item(client: Any, value: Any, max_payload: int, expires: int) -> tuple[str, str | None]:
    """A queue item's JSON, and the key of its arrays' hash (None without arrays), stored first."""
    value, refs = externalize(value, max_payload, "the item")
    if not refs:
        return encoding.dumps([value]), None
    owner = f"item-{uuid.uuid4().hex}"
    pairs = claim(refs, owner, ARGUMENT_FIELDS)
    text = encoding.dumps([value])
    store(client, owner, pairs, expires)
    return text, data_key(owner)


def decode_item(client: Any, text: Any, max_payload: int) -> tuple[Any, list[str]]:
    """A queue item's value, its arrays read, and the keys of the hashes they came from."""
    encoding.take_references()
    value = encoding.loads(text)[0]
    if not encoding.take_references():
        return value, []
    found: list[Any] = []
    _find(value, found)
    keys = sorted({item.key for item in found if type(item) is ArrayRef and item.key})
    return resolve(value, client, max_payload), keys


def result_with_refs(task: Task, value: Any, max_payload: int) -> Any:
    """A task's return value ready to store: its arrays' bytes held in a memory file for a producer
    on this machine that asked for it (tasks/held.py), or waiting in pending_results to be stored
    with the result."""
    task_id = task.request.id
    value, refs = externalize(value, max_payload, f"the result of {task.name!r}")
    if refs:
        pairs = claim(refs, task_id, RESULT_FIELDS)
        reply = getattr(task.request, REPLY_HEADER, None)
        if wants_shared(reply):
            hold(task_id, refs, task.backend.get_key_for_task(task_id), reply["pid"])
        else:
            pending_results[task_id] = pairs
    return value


def resolve(value: Any, client: Any, max_payload: int, handles: bool = True, mapped: bool = False) -> Any:
    """`value` with each ArrayRef replaced by its array, read in one round trip, and (if `handles`)
    each Handle by its value. RefusedTask for bytes that are gone or malformed; HandleDeleted
    for a deleted handle."""
    found: list[Any] = []
    _find(value, found)
    for item in found:
        if type(item) is Refused:
            raise RefusedTask(item.reason)
    refs = [item for item in found if type(item) is ArrayRef]
    fetched = fetch(client, refs, max_payload, mapped=mapped)
    arrays = {id(ref): array for ref, array in zip(refs, fetched, strict=True)}
    if handles:
        values: dict[str, Any] = {}
        for item in found:
            if isinstance(item, Handle):
                if item.id not in values:
                    values[item.id] = handle_value(client, item, max_payload)
                arrays[id(item)] = values[item.id]
    return _put_back(value, arrays) if arrays else value


def _find(value: Any, found: list[Any]) -> None:
    kind = type(value)
    if kind is ArrayRef or kind is Refused or isinstance(value, Handle):
        found.append(value)
    elif kind is list or kind is tuple:
        if not encoding.all_scalars(value):
            for item in value:
                _find(item, found)
    elif kind is dict:
        for item in value.values():
            _find(item, found)
    elif kind is encoding.Values:
        _find(value.items, found)


def _put_back(value: Any, arrays: dict[int, Any]) -> Any:
    kind = type(value)
    if id(value) in arrays and (kind is ArrayRef or isinstance(value, Handle)):
        return arrays[id(value)]
    if kind is list:
        return value if encoding.all_scalars(value) else [_put_back(item, arrays) for item in value]
    if kind is tuple:
        return value if encoding.all_scalars(value) else tuple(_put_back(item, arrays) for item in value)
    if kind is dict:
        return {key: _put_back(item, arrays) for key, item in value.items()}
    if kind is encoding.Values:
        return encoding.Values(_put_back(value.items, arrays))
    return value


def handle_value(client: Any, handle: Handle, max_payload: int) -> Any:
    """The value behind a `pool.put` handle: read once per process, its arrays read-only (shared by
    every task of this process that uses it, as Ray's are); HandleDeleted once it is deleted."""
    with client.pipeline(transaction=False) as pipe:
        pipe.exists(handle.key)
        if handle.id not in _handles:
            pipe.hget(handle.key, HANDLE_VALUE)
        replies = pipe.execute()
    if not replies[0]:
        raise HandleDeleted(
            f"{handle!r} was deleted (handle.delete(), or its pool ended) or has expired: its value is gone"
        )
    if handle.id in _handles:
        return _handles[handle.id]
    text = replies[1]
    if text is None:
        raise HandleDeleted(f"{handle!r} was deleted while it was read")
    stored = encoding.loads(text)[0]
    found: list[Any] = []
    _find(stored, found)
    refs = [item for item in found if type(item) is ArrayRef]
    arrays = fetch(client, refs, max_payload, writable=False, mapped=True)
    value = _put_back(stored, {id(ref): array for ref, array in zip(refs, arrays, strict=True)})
    while len(_handles) >= HANDLES_KEPT:
        del _handles[next(iter(_handles))]
    _handles[handle.id] = value
    return value


def forget_deleted_handles(client: Any) -> None:
    """Let go of kept values whose handle was deleted (their memory with them), once a second."""
    global _handles_checked_at
    now = time.monotonic()
    if not _handles or now - _handles_checked_at < HANDLES_CHECKED_EVERY:
        return
    _handles_checked_at = now
    kept = list(_handles)
    with client.pipeline(transaction=False) as pipe:
        for handle_id in kept:
            pipe.exists(Handle(handle_id).key)
        found = pipe.execute()
    for handle_id, exists in zip(kept, found, strict=True):
        if not exists:
            _handles.pop(handle_id, None)


class FarpoolTask(Task):  # type: ignore[misc]
    """Every task of a farpool app: arrays arrive as arrays and leave as bytes beside the result."""

    resolve_arguments = True  # the chord's gather passes its parts' arrays on without reading them

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sweep(self.app.backend.client)
        forget_deleted_handles(self.app.backend.client)
        if encoding.take_references() and self.resolve_arguments:
            client, limit = self.app.backend.client, self.app.settings.max_payload
            args, kwargs = resolve((args, kwargs), client, limit)
        result = super().__call__(*args, **kwargs)
        if self.request.id is None or numpy_module() is None:
            return result
        return result_with_refs(self, result, self.app.settings.max_payload)
