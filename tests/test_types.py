"""Values keep their Python types through farpool, as through multiprocessing's pickle."""

from __future__ import annotations

import datetime
import decimal
import multiprocessing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import usertasks

from producer import Pool
from tasks.encoding import TAG, dumps, loads

VALUES: list[Any] = [
    (1, 2),
    [(1, "a"), (2, "b")],
    ((1, (2, 3)), []),
    {1, 2, 3},
    frozenset({"x"}),
    {1: "a", 2: "b"},
    {(0, 1): "pair", None: 0, 2.5: True},
    {"nested": {3: (4, 5)}},
    b"\x00\xffraw",
    b"text",
    datetime.datetime(2026, 11, 25, 18, 0, 1),
    datetime.date(2026, 11, 25),
    decimal.Decimal("1.10"),
    uuid.UUID(int=7),
    {TAG: "tuple", "items": [1]},  # a user's dict that looks like a tag stays a dict
    [1, 2.5, "s", None, True],
]
IDS = [type(value).__name__ + str(index) for index, value in enumerate(VALUES)]


def typed(value: Any) -> Any:
    """The value with every container's type spelled out, so that == also compares types."""
    if isinstance(value, dict):
        return ("dict", sorted((repr(typed(k)), typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [typed(item) for item in value]
        return (
            type(value).__name__,
            sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items,
        )
    return (type(value).__name__, value)


@pytest.mark.unit
@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_encoding_round_trips_each_type(value: Any) -> None:
    assert typed(loads(dumps([value]))[0]) == typed(value)


@pytest.mark.unit
def test_config_names_the_serializer_tasks_registers() -> None:
    from config.celeryconfig import SERIALIZER as named
    from tasks.encoding import SERIALIZER as registered

    assert named == registered


@pytest.mark.unit
def test_a_message_body_stays_a_json_array() -> None:
    assert dumps(((1, 2), {"k": (3,)}, {})).startswith("[")


@pytest.mark.unit
@pytest.mark.parametrize("text", ['{"__farpool__": "os.system", "items": []}', '{"__farpool__": "eval"}'])
def test_an_unknown_tag_is_refused(text: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        loads(text)


@pytest.fixture(scope="module")
def stdlib_pool() -> Iterator[Any]:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        yield pool


def test_values_come_back_with_the_types_multiprocessing_gives(module_pool: Pool, stdlib_pool: Any) -> None:
    ours = module_pool.map(usertasks.identity, VALUES, chunksize=3)
    theirs = stdlib_pool.map(usertasks.identity, VALUES, chunksize=3)
    assert [typed(value) for value in ours] == [typed(value) for value in theirs]
    assert module_pool.apply(usertasks.identity, ({1: (2, 3)},)) == {1: (2, 3)}
    assert module_pool.map_async(usertasks.identity, [(1, 2)]).get(60) == [(1, 2)]


def test_the_worker_receives_the_types_that_were_sent(module_pool: Pool, stdlib_pool: Any) -> None:
    values = [(1, 2), {3: {4}}, frozenset({5})]
    assert module_pool.map(usertasks.arrived_as, values) == stdlib_pool.map(usertasks.arrived_as, values)
    assert module_pool.starmap(usertasks.arrived_as, [[(1, 2)]]) == ["(1, 2)"]
    assert list(module_pool.imap(usertasks.arrived_as, [(7,)])) == ["(7,)"]


@pytest.mark.unit
def test_a_chunks_values_are_a_list_in_json_and_short_in_a_repr() -> None:
    from kombu.utils import json as kombu_json

    from tasks.encoding import Values, dumps, loads

    values = Values([(1, 2), *range(500)])
    assert loads(dumps(values)) == [(1, 2), *range(500)]
    assert kombu_json.loads(kombu_json.dumps(values)) == [[1, 2], *range(500)]
    assert len(repr(values)) < 1024 and repr(values).endswith(", ...]")
    assert repr(Values([1, 2])) == "[1, 2]"
