"""NumPy values on the wire: an array as a dtype description, a shape and its raw bytes; a NumPy
scalar as its dtype and a JSON value. No pickle, and NumPy is imported only when a value needs it.

An array's bytes never go into the JSON message: they travel beside it (tasks/blobs.py), and the
message carries an `ArrayRef`, which says where they are and what they are:

    {"__farpool__": "ndarray", "dtype": "<f8", "shape": [2, 3], "order": "C",
     "n": 48, "key": "farpool-data-<task id>", "field": "a0"}

Decoding checks everything before it allocates: the dtype holds no Python objects, the shape is
a short list of non-negative integers, and the byte count is the shape's times the item size.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

from tasks.errors import RefusedTask

MAX_DIMENSIONS = 32  # NumPy's own limit was 32 until 2.0
# Scalars whose value JSON carries exactly: bool, integers, floats up to 64 bits, complex up to
# 128, dates and durations (as their int64 count of units). Others travel as 0-d arrays.
_JSON_SCALAR_KINDS = frozenset("biufcmM")


_inline: frozenset[type] = frozenset()


def inline_scalar_types() -> frozenset[type]:
    """NumPy's scalar types whose every value travels as JSON (scalar_tag): none before NumPy is imported."""
    global _inline
    np = numpy_module()
    if np is not None and not _inline:
        names = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
        names += ("float16", "float32", "float64", "complex64", "complex128", "datetime64", "timedelta64")
        _inline = frozenset(getattr(np, name) for name in names)
    return _inline


def numpy_module() -> Any:
    """NumPy if this process imported it already: no value can be an array otherwise."""
    return sys.modules.get("numpy")


def import_numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise RefusedTask(
            "a NumPy value arrived but NumPy is not installed here: pip install 'farpool[numpy]'"
        ) from None
    return numpy


def is_array(value: Any) -> bool:
    np = numpy_module()
    return np is not None and isinstance(value, np.ndarray)


def is_numpy_scalar(value: Any) -> bool:
    np = numpy_module()
    return np is not None and isinstance(value, np.generic)


class ArrayRef:
    """An array in a message: what it is (dtype, shape, order) and where its bytes are.

    On the sending side `data` holds the bytes (a memoryview of the array, no copy) until they
    are stored; `scalar` marks a NumPy scalar sent as a 0-d array (np.void, long doubles).
    """

    __slots__ = ("data", "dtype", "field", "key", "nbytes", "order", "parsed", "scalar", "shape", "shared")

    def __init__(
        self,
        dtype: Any,
        shape: tuple[int, ...],
        order: str,
        nbytes: int,
        key: str | None = None,
        field: str | None = None,
        data: Any = None,
        scalar: bool = False,
    ) -> None:
        self.dtype, self.shape, self.order, self.nbytes = dtype, shape, order, nbytes
        self.key, self.field, self.data, self.scalar = key, field, data, scalar
        self.parsed: Any = None  # the numpy.dtype `dtype` describes, once checked (checked_ref)
        self.shared: Any = None  # where a same-host sender shared the bytes (tasks/shared_memory.py)

    def __json__(self) -> dict[str, Any]:
        found = {"dtype": self.dtype, "shape": list(self.shape), "order": self.order, "n": self.nbytes}
        found.update(key=self.key, field=self.field)  # None until its bytes are stored
        if self.scalar:
            found["scalar"] = True
        if self.shared is not None:
            found["shm"] = self.shared
        return found

    def __repr__(self) -> str:
        return f"array(dtype={self.dtype!r}, shape={self.shape})"


class Refused:
    """A value a message carried that this process will not rebuild (a malformed array or scalar).

    Decoding does not raise: a worker's main process decodes each message too, and an error
    there would drop the message without an answer. The task that receives it raises
    RefusedTask with `reason` instead (tasks/payload.py), and its caller gets that error.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __json__(self) -> dict[str, Any]:
        raise TypeError(f"a refused value cannot be sent on: {self.reason}")

    def __repr__(self) -> str:
        return f"<refused: {self.reason}>"


def dtype_description(dtype: Any) -> Any:
    """A JSON description of `dtype`: its string ('<f8', '<M8[ns]', '|S5'), or for a structured
    dtype NumPy's .npy format description (a list of [name, format(, shape)])."""
    if dtype.fields is None and dtype.subdtype is None:
        return dtype.str
    np = import_numpy()
    return _as_lists(np.lib.format.dtype_to_descr(dtype))


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    return value


def _as_tuples(description: Any, depth: int = 0) -> Any:
    """The .npy description back from JSON lists, each piece checked to be a name or a format."""
    if depth > MAX_DIMENSIONS:
        raise ValueError("dtype nested too deeply")
    if isinstance(description, str):
        return description
    if not isinstance(description, list) or not description:
        raise ValueError(f"bad dtype description {description!r:.80}")
    fields = []
    for field in description:
        if not isinstance(field, list) or len(field) not in (2, 3) or not isinstance(field[0], str):
            raise ValueError(f"bad dtype field {field!r:.80}")
        name, fmt = field[0], _as_tuples(field[1], depth + 1)
        if len(field) == 3:
            fields.append((name, fmt, tuple(_checked_shape(field[2]))))
        else:
            fields.append((name, fmt))
    return fields


def safe_dtype(description: Any) -> Any:
    """The dtype described, refused (RefusedTask) if malformed or holding Python objects."""
    np = import_numpy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a deprecated alias is refused, not logged per message
            if isinstance(description, str):
                dtype = np.dtype(description)
            else:
                dtype = np.lib.format.descr_to_dtype(_as_tuples(description))
    except Exception as error:  # whatever NumPy makes of a hostile description: refused
        raise RefusedTask(f"a message described an array's dtype badly ({error})") from None
    if dtype.hasobject:
        raise RefusedTask(f"a message described an array of Python objects ({dtype}): refused")
    return dtype


def _checked_shape(shape: Any) -> list[int]:
    if not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS:
        raise ValueError(f"bad shape {shape!r:.80}")
    if not all(type(size) is int and size >= 0 for size in shape):
        raise ValueError(f"bad shape {shape!r:.80}")
    return shape


def checked_ref(found: dict[str, Any]) -> ArrayRef:
    """An ArrayRef from a message's tag, every field checked: RefusedTask if anything is off."""
    try:
        shape = tuple(_checked_shape(found.get("shape")))
        nbytes, key, field, order = found.get("n"), found.get("key"), found.get("field"), found.get("order")
        if type(nbytes) is not int or not isinstance(key, str) or not isinstance(field, str):
            raise ValueError("bad byte count, key or field")
        if order not in ("C", "F"):
            raise ValueError(f"bad order {order!r:.20}")
    except ValueError as error:
        raise RefusedTask(f"a message carried a malformed array ({error})") from None
    dtype = safe_dtype(found.get("dtype"))
    expected = math.prod(shape) * dtype.itemsize
    if nbytes != expected:
        raise RefusedTask(f"a message's array of shape {shape} and dtype {dtype} claims {nbytes} bytes")
    ref = ArrayRef(found["dtype"], shape, order, nbytes, key, field, scalar=found.get("scalar") is True)
    ref.parsed, ref.shared = dtype, found.get("shm")
    return ref


def array_from(ref: ArrayRef, data: Any, writable: bool = True) -> Any:
    """The array `ref` describes, over `data` (its bytes); RefusedTask if their length differs.

    Bytes from Redis are immutable: a writable array is a copy of them, as multiprocessing's
    arguments and results are the receiver's own.
    """
    np = import_numpy()
    if data is None or len(data) != ref.nbytes:
        got = "none" if data is None else len(data)
        raise RefusedTask(f"an array of {ref.nbytes} bytes arrived with {got}")
    dtype = ref.parsed if ref.parsed is not None else safe_dtype(ref.dtype)
    if ref.nbytes == 0:
        array = np.empty(ref.shape, dtype=dtype, order=ref.order)
    else:
        flat = np.frombuffer(data, dtype=dtype)
        array = flat.reshape(ref.shape[::-1]).T if ref.order == "F" else flat.reshape(ref.shape)
        if writable and not array.flags.writeable:
            array = array.copy(order="K")
    if ref.scalar:
        return array[()]
    return array


def outgoing_ref(value: Any, max_payload: int, where: str) -> ArrayRef:
    """The ArrayRef for an array (or a scalar JSON cannot carry) about to be sent; TypeError for
    an object array, ValueError past FARPOOL_MAX_PAYLOAD, each naming `where` it was found."""
    np = import_numpy()
    scalar = isinstance(value, np.generic)
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise TypeError(
            f"{where} is a NumPy array of Python objects ({array.dtype}), which farpool never sends"
        )
    if array.nbytes > max_payload:
        raise ValueError(
            f"{where} is an array of {array.nbytes:,} bytes, over FARPOOL_MAX_PAYLOAD ({max_payload:,})"
        )
    order = "F" if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    contiguous = array.T if order == "F" else np.ascontiguousarray(array)
    # as bytes: a memoryview of a datetime64 or structured array itself is refused by Python
    data = memoryview(contiguous.reshape(-1).view(np.uint8)) if contiguous.nbytes else b""
    description = dtype_description(array.dtype)
    return ArrayRef(description, tuple(array.shape), order, array.nbytes, data=data, scalar=scalar)


def scalar_tag(value: Any) -> dict[str, Any] | None:
    """The JSON of a NumPy scalar whose value JSON carries exactly; None for the others."""
    dtype = value.dtype
    kind = dtype.kind
    if kind not in _JSON_SCALAR_KINDS or (kind == "f" and dtype.itemsize > 8) or dtype.itemsize > 16:
        return None
    if kind in "mM":
        carried: Any = int(value.view("i8"))
    elif kind == "c":
        carried = [float(value.real), float(value.imag)]
    else:
        carried = value.item()
    return {"dtype": dtype.str, "value": carried}


def scalar_from(found: dict[str, Any]) -> Any:
    """The NumPy scalar a scalar tag describes; RefusedTask if malformed."""
    np = import_numpy()
    description, carried = found.get("dtype"), found.get("value")
    if not isinstance(description, str):
        raise RefusedTask("a message carried a NumPy scalar without its dtype")
    dtype = safe_dtype(description)
    if dtype.kind not in _JSON_SCALAR_KINDS:
        raise RefusedTask(f"a message carried a NumPy scalar of dtype {dtype} as JSON")
    numbers = (bool, int, float)
    try:
        if dtype.kind in "mM" and type(carried) is int:
            return np.array(carried, dtype="i8").view(dtype)[()]
        if dtype.kind == "c" and type(carried) is list and len(carried) == 2:
            real, imaginary = carried
            if type(real) in numbers and type(imaginary) in numbers:
                return dtype.type(complex(real, imaginary))
        if dtype.kind in "biuf" and type(carried) in numbers:
            return dtype.type(carried)
    except Exception as error:  # whatever NumPy makes of a hostile value: refused
        raise RefusedTask(f"a message carried a bad NumPy scalar of dtype {dtype} ({error})") from None
    raise RefusedTask(
        f"a message carried a NumPy scalar of dtype {dtype} with a value of {type(carried).__name__}"
    )
