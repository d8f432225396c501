"""How arrays and NumPy scalars are written into a message and rebuilt from one: no server needed.

The decoder meets messages from anyone who can reach the broker: it rebuilds only arrays of
dtypes without Python objects, checks every field before it allocates, and turns anything else
into a refusal that the receiving task raises (RefusedTask), never into an allocation.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.arrays import ArrayRef, Refused, array_from, checked_ref, dtype_description, safe_dtype
from tasks.blobs import fetch
from tasks.encoding import TAG, dumps, loads, take_references
from tasks.errors import RefusedTask
from tasks.payload import externalize, resolve

pytestmark = pytest.mark.unit

DTYPES = [
    "?", "i1", ">i2", "<i4", "i8", "u1", "u2", "u4", ">u8", "f2", "f4", ">f8", "c8", "c16",
    "M8[ns]", "M8[D]", ">m8[ms]", "S5", "U3", ">U2", "V4",
    [("a", "<i4"), ("b", ">f8", (2,)), ("c", "U2")],
    [("outer", [("x", "u1"), ("y", "<f4")]), ("z", "?")],
    {"names": ["p", "q"], "formats": ["u1", "<i8"], "offsets": [0, 8]},
]  # fmt: skip


class FakeClient:
    """Just what fetch uses of a Redis client: a pipeline of HGETs over a dict."""

    def __init__(self, stored: dict[tuple[str, str], bytes]) -> None:
        self.stored = stored
        self.asked: list[tuple[str, str]] = []

    def pipeline(self, transaction: bool = False) -> FakeClient:
        return self

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def hget(self, key: str, field: str) -> None:
        self.asked.append((key, field))

    def execute(self) -> list[bytes | None]:
        replies = [self.stored.get(asked) for asked in self.asked]
        self.asked = []
        return replies


def sent_and_received(value: Any) -> Any:
    """`value` through the encoder and the decoder, its arrays' bytes through a fake Redis."""
    value, refs = externalize(value, 1 << 30, "the value")
    stored = {}
    for index, ref in enumerate(refs):
        ref.key, ref.field = "farpool-data-test", f"a{index}"
        stored[(ref.key, ref.field)] = bytes(ref.data)
    take_references()
    decoded = loads(dumps([value]))[0]
    assert take_references() == len(refs)
    return resolve(decoded, FakeClient(stored), 1 << 30)


@pytest.mark.parametrize("dtype", DTYPES, ids=[str(dtype) for dtype in DTYPES])
def test_each_dtype_is_described_and_rebuilt_exactly(dtype: Any) -> None:
    original = np.dtype(dtype)
    assert safe_dtype(loads(dumps([dtype_description(original)]))[0]) == original
    array = np.zeros((2, 3), dtype=original)
    back = sent_and_received(array)
    assert back.dtype == original and back.shape == (2, 3) and back.flags.writeable


def test_layouts_shapes_and_scalars_survive() -> None:
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    strided = np.arange(30).reshape(5, 6)[::2, 1::3]
    for array in (fortran, strided, np.zeros(0), np.zeros((0, 4)), np.array(3.5), np.arange(4)[::-1]):
        back = sent_and_received(array)
        assert back.shape == array.shape and (back == array).all()
        fortran_only = array.flags.f_contiguous and not array.flags.c_contiguous
        assert back.flags.c_contiguous or fortran_only
        assert back.flags.f_contiguous or not fortran_only
    scalars = [np.float32(1.5), np.int64(-2), np.bool_(False), np.datetime64("NaT"), np.longdouble(2.5)]
    scalars += [np.uint64(2**64 - 1), np.complex128(1 - 1j), np.str_("x"), np.zeros(1, "i4,f8")[0]]
    back = sent_and_received(scalars)
    assert [type(value) for value in back] == [type(value) for value in scalars]
    assert repr(back) == repr(scalars)


def test_plain_values_are_untouched_and_scalars_stay_in_the_json() -> None:
    assert externalize([1, "a", (2, 3)], 100, "x") == ([1, "a", (2, 3)], [])
    text = dumps([np.float32(1.5)])
    assert '"numpy"' in text and "1.5" in text


def test_an_object_array_and_a_too_large_one_are_refused_before_sending() -> None:
    with pytest.raises(TypeError, match="item 4 is a NumPy array of Python objects"):
        externalize([1, np.array([None])], 100, "item 4")
    with pytest.raises(ValueError, match="FARPOOL_MAX_PAYLOAD"):
        externalize(np.zeros(20), 100, "item 0")


def tag(**fields: Any) -> str:
    found = {"dtype": "<f8", "shape": [2], "order": "C", "n": 16, "key": "k", "field": "f", **fields}
    return dumps([Raw({TAG: "ndarray", **found})])


class Raw:
    """A message part written as given: what a hostile sender could put on the queue."""

    def __init__(self, mapping: dict[str, Any]) -> None:
        self.mapping = mapping

    def __json__(self) -> dict[str, Any]:
        return self.mapping


HOSTILE = {
    "object dtype": tag(dtype="|O"),
    "object field": tag(dtype=[["a", "|O"]], n=16),
    "unparsable dtype": tag(dtype="q9z"),
    "dtype of numbers": tag(dtype=[[1, 2]]),
    "negative shape": tag(shape=[-2]),
    "shape of strings": tag(shape=["2"]),
    "too many dimensions": tag(shape=[1] * 40, n=8),
    "byte count off": tag(n=17),
    "absurd shape": tag(shape=[10**12], n=8 * 10**12),
    "bad order": tag(order="Z"),
    "no key": tag(key=None),
    "scalar of objects": dumps([Raw({TAG: "numpy", "dtype": "|O", "value": 1})]),
    "scalar of bad value": dumps([Raw({TAG: "numpy", "dtype": "<i8", "value": "many"})]),
    "scalar as void": dumps([Raw({TAG: "numpy", "dtype": "|V8", "value": 1})]),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_array_is_a_refusal_raised_by_the_task_not_by_decoding(text: str) -> None:
    decoded = loads(text)[0]  # a worker's main process decodes every message: it must not raise
    assert isinstance(decoded, (Refused, ArrayRef))
    client = FakeClient({("k", "f"): b"\x00" * 16})
    with pytest.raises(RefusedTask):
        resolve([decoded], client, 1 << 30)


def test_bytes_that_do_not_match_their_description_are_refused_without_allocating() -> None:
    ref = checked_ref({"dtype": "<f8", "shape": [4], "order": "C", "n": 32, "key": "k", "field": "f"})
    with pytest.raises(RefusedTask, match="32 bytes arrived with 8"):
        fetch(FakeClient({("k", "f"): b"\x00" * 8}), [ref], 1 << 30)
    with pytest.raises(RefusedTask, match="are gone"):
        fetch(FakeClient({}), [ref], 1 << 30)
    big = checked_ref(
        {"dtype": "<f8", "shape": [10**9], "order": "C", "n": 8 * 10**9, "key": "k", "field": "f"}
    )
    client = FakeClient({})
    with pytest.raises(RefusedTask, match="FARPOOL_MAX_PAYLOAD"):
        fetch(client, [big], 1 << 29)
    assert client.asked == [], "nothing was read for an array over the limit"
    with pytest.raises(RefusedTask):
        array_from(ref, b"\x00" * 31)


fields = st.one_of(
    st.none(),
    st.integers(-(10**20), 10**20),
    st.text(max_size=12),
    st.lists(st.integers(-5, 10**6), max_size=40),
    st.lists(st.lists(st.one_of(st.text(max_size=4), st.integers(0, 9)), max_size=3), max_size=3),
    st.sampled_from(["<f8", "|O", "V0", "S0", "U0", "M8[ns]", "<i8", "C", "F", ">f2", "q", "V9999999999"]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["dtype", "shape", "order", "n", "key", "field", "scalar"]), fields))
def test_any_array_tag_decodes_to_an_array_or_a_refusal(found: dict[str, Any]) -> None:
    decoded = loads(dumps([Raw({TAG: "ndarray", **found})]))[0]
    assert isinstance(decoded, (Refused, ArrayRef))
    client = FakeClient({("k", "f"): b"\x01" * 64})
    try:
        value = resolve([decoded], client, 1 << 20)
    except RefusedTask:
        return
    assert isinstance(value[0], (np.ndarray, np.generic)) and not np.asarray(value[0]).dtype.hasobject


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["dtype", "value"]), fields))
def test_any_scalar_tag_decodes_to_a_scalar_or_a_refusal(found: dict[str, Any]) -> None:
    decoded = loads(dumps([Raw({TAG: "numpy", **found})]))[0]
    if isinstance(decoded, Refused):
        with pytest.raises(RefusedTask):
            resolve([decoded], FakeClient({}), 1 << 20)
    else:
        assert isinstance(decoded, np.generic) and not decoded.dtype.hasobject


def test_farpool_works_and_imports_no_numpy_until_a_value_needs_it() -> None:
    code = (
        "import sys, producer, tasks, tasks.encoding as e\n"
        "assert e.loads(e.dumps([(1, 2)])) == [(1, 2)]\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
