"""farpool's JSON: kombu's JSON, plus the Python types a multiprocessing user would miss.

Plain JSON turns a tuple into a list and `{1: 'a'}` into `{'1': 'a'}`, and cannot carry a set.
multiprocessing (pickle) keeps them all, so farpool tags them instead, and never uses pickle:

    (1, 2)        -> {"__farpool__": "tuple", "items": [1, 2]}
    {1, 2}        -> {"__farpool__": "set", "items": [1, 2]}   (frozenset likewise)
    {1: "a"}      -> {"__farpool__": "dict", "items": [[1, "a"]]}   (any key that is not a str)

    Lock("x")     -> {"__farpool__": "Lock", "items": [{"name": "x", "lease": 60.0}]}
                     (Semaphore, BoundedSemaphore, Queue and Event likewise: by name)

    CompletedProgram(["echo", "hi"], 0, b"hi\n", b"")
                  -> {"__farpool__": "CompletedProgram",
                      "items": [["echo", "hi"], 0, <bytes>, <bytes>, []]}   (tasks/programs.py's result)
    np.float32(1.5) -> {"__farpool__": "numpy", "dtype": "<f4", "value": 1.5}
    an ndarray      -> {"__farpool__": "ndarray", "dtype": "<f8", "shape": [3], ...}
                       (its bytes beside the message: tasks/arrays.py, tasks/blobs.py)
    pool.put(x)     -> {"__farpool__": "handle", "id": "..."}

bytes, datetimes, Decimal and UUID travel as kombu's JSON already carries them. Only these
types are rebuilt on decoding: a tag names a container, one of tasks/coordination's classes,
tasks/completed.py's CompletedProgram, or a NumPy dtype that holds no objects, never a class
to import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kombu.serialization import register
from kombu.utils import json as kombu_json

from tasks import arrays
from tasks.blobs import Handle
from tasks.completed import CompletedProgram
from tasks.coordination.base import KINDS, rebuild
from tasks.errors import RefusedTask

SERIALIZER = "farpool-json"  # config/celeryconfig.py names it for Celery

CONTENT_TYPE = "application/x-farpool-json"
TAG = "__farpool__"
SCALARS = frozenset({int, float, str, bool, type(None)})

_BUILD: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": lambda pairs: {key: value for key, value in pairs},
    "CompletedProgram": lambda fields: CompletedProgram(*fields),
}
_decoded = threading.local()  # how many array references and handles this thread decoded


def take_references() -> int:
    """How many array references and handles this thread decoded since it last asked."""
    count: int = getattr(_decoded, "count", 0)
    _decoded.count = 0
    return count


def _referenced(value: Any) -> Any:
    _decoded.count = getattr(_decoded, "count", 0) + 1
    return value


class Values:
    """A chunk's values, as a task returns them: JSON writes the list; repr shows its start.

    Celery keeps a repr of every result for its log and events (1 KB of it), but builds it by
    walking the whole value: 16 % of a worker process's time on map(square, range(100_000)).
    """

    __slots__ = ("items",)
    SHOWN = 100

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __repr__(self) -> str:
        if len(self.items) <= self.SHOWN:
            return repr(self.items)
        return repr(self.items[: self.SHOWN])[:-1] + ", ...]"

    def __json__(self) -> list[Any]:  # kombu's JSON, where farpool-json is not the serializer
        return self.items


def all_scalars(values: Any) -> bool:
    """Every value is a JSON scalar (the common case, checked at C speed)."""
    return SCALARS.issuperset(map(type, values))


def tagged(value: Any) -> Any:
    """`value` with its tuples, sets and non-str-keyed dicts tagged, ready for JSON."""
    kind = type(value)
    if kind in SCALARS:
        return value
    if kind is Values:
        value, kind = value.items, list
    if kind is list:
        if all_scalars(value):
            return value
        return [tagged(item) for item in value]
    if kind is dict:
        if TAG not in value and all(type(key) is str for key in value):
            return {key: tagged(item) for key, item in value.items()}
        return {TAG: "dict", "items": [[tagged(key), tagged(item)] for key, item in value.items()]}
    if kind is tuple:
        return {TAG: "tuple", "items": [tagged(item) for item in value]}
    if kind is set or kind is frozenset:
        return {TAG: kind.__name__, "items": [tagged(item) for item in value]}
    if kind is CompletedProgram:
        return {TAG: "CompletedProgram", "items": [tagged(field) for field in value.__json__()]}
    if kind in KINDS.values():
        return {TAG: kind.__name__, "items": [value.__json__()]}
    if kind is arrays.ArrayRef:
        return {TAG: "ndarray", **value.__json__()}
    if isinstance(value, Handle):
        return {TAG: "handle", **value.__json__()}
    if arrays.numpy_module() is not None:
        return _numpy_tag(value)
    return value  # kombu's JSON carries it (bytes, datetime, ...) or says it cannot


def _numpy_tag(value: Any) -> Any:
    """A NumPy scalar's tag; for an array not yet replaced by its ArrayRef (tasks/payload.py), the
    tag without a place for its bytes, which only a check before sending writes."""
    if arrays.is_numpy_scalar(value):
        tag = arrays.scalar_tag(value)
        if tag is not None:
            return {TAG: "numpy", **tag}
    if arrays.is_numpy_scalar(value) or arrays.is_array(value):
        ref = arrays.outgoing_ref(value, max_payload=value.nbytes, where=f"a {type(value).__name__}")
        return {TAG: "ndarray", **ref.__json__()}
    return value


def _untag(mapping: dict[str, Any]) -> Any:
    kind = mapping.get(TAG)
    if kind is None:
        return kombu_json.object_hook(mapping)  # type: ignore[no-untyped-call]
    build = _BUILD.get(kind)
    if build is not None:
        return build(mapping["items"])
    if kind == "numpy" or kind == "ndarray":
        try:
            if kind == "numpy":
                return arrays.scalar_from(mapping)
            return _referenced(arrays.checked_ref(mapping))
        except RefusedTask as refused:
            return _referenced(arrays.Refused(str(refused)))
    if kind == "handle":
        handle_id = mapping.get("id")
        if not isinstance(handle_id, str):
            raise ValueError(f"a {TAG} handle without an id")
        return _referenced(Handle(handle_id))
    if kind not in KINDS:
        raise ValueError(f"unknown {TAG} tag {kind!r}")
    (arguments,) = mapping["items"]
    return rebuild(kind, arguments)


def dumps(value: Any) -> str:
    """The JSON farpool sends for `value`. The top level stays as it is: a Celery message body
    (a tuple of args, kwargs, options) must remain a JSON array."""
    top = [tagged(item) for item in value] if type(value) is tuple else tagged(value)
    return str(kombu_json.dumps(top))  # type: ignore[no-untyped-call]


def loads(text: str | bytes) -> Any:
    return kombu_json.loads(text, object_hook=_untag)  # type: ignore[no-untyped-call]


def register_serializer() -> None:
    """Make SERIALIZER known to kombu (idempotent): producers and workers both need it."""
    register(SERIALIZER, dumps, loads, content_type=CONTENT_TYPE, content_encoding="utf-8")
