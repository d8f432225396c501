"""The arrays of a call on their way out: replaced by references, their bytes stored beside the
message (tasks/blobs.py) just before it is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from producer.sending.shared_arrays import SharedArrays
from tasks import encoding
from tasks.arrays import ArrayRef, numpy_module
from tasks.blobs import ARGUMENT_FIELDS, claim, store
from tasks.payload import externalize, externalize_items


class Outgoing:
    """The items of one call with their arrays replaced, and each item's array references."""

    def __init__(self, items: list[Any], max_payload: int) -> None:
        self.items, self._refs = externalize_items(items, max_payload)

    def refs(self, start: int, count: int) -> list[ArrayRef]:
        """The references of items start .. start + count - 1 (a chunk's)."""
        return [ref for item_refs in self._refs[start : start + count] for ref in item_refs]

    @property
    def has_arrays(self) -> bool:
        return bool(self._refs)


def array_bytes(items: list[Any]) -> int:
    """The bytes of the arrays in these items (nested in lists, tuples and dicts too)."""
    np = numpy_module()
    if np is None or encoding.all_scalars(items):
        return 0
    total = 0
    pending: list[Any] = list(items)
    while pending:
        value = pending.pop()
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif type(value) in (list, tuple):
            pending.extend(value)
        elif type(value) is dict:
            pending.extend(value.values())
    return total


def call_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], max_payload: int
) -> tuple[list[Any], dict[str, Any], list[ArrayRef]]:
    """An apply's arguments with their arrays replaced, and the references."""
    new_args, arg_refs = externalize(list(args), max_payload, "an argument")
    new_kwargs, kwarg_refs = externalize(dict(kwargs), max_payload, "a keyword argument")
    return new_args, new_kwargs, [*arg_refs, *kwarg_refs]


def store_arrays(
    client: Any, owner: str, refs: Sequence[ArrayRef], expires: int, shared: SharedArrays | None = None
) -> None:
    """Store these references' bytes for task `owner`, then let go of the arrays: in a memory file
    when every worker is on this host, in the task's Redis hash otherwise."""
    if not refs:
        return
    pairs = claim(refs, owner, ARGUMENT_FIELDS)
    if shared is not None and shared.wanted():
        shared.share(owner, refs)
    else:
        store(client, owner, pairs, expires)
    for ref in refs:
        ref.data = None
