"""What crosses between producer and worker (tasks/wire.py, tasks/contract.py, tasks/lua/), and the
chunk sizes a pool picks: no server, no worker."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from celery.worker.control import Panel

import tasks.control  # noqa: F401 - registers the remote-control commands
from producer.sending.chunking import ChunkSizer, default_chunksize, split, star_items
from tasks import wire
from tasks.contract import chunk_arguments, executor
from tasks.lua import INCLUDE, script

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "tasks" / "lua"
SCRIPTS = sorted(path.stem for path in LUA.glob("*.lua") if not path.stem.startswith("lib_"))

# -- the wire ----------------------------------------------------------------------------------------


def test_a_call_record_round_trips_as_the_gather_task_reads_it() -> None:
    record = wire.CallRecord(task="tasks.examples.square", chunks=["a", "b"])
    assert wire.load_record(wire.dump_record(record).encode()) == record
    assert wire.record_key("id") == "farpool-call-id"
    assert wire.load_record('{"task": "t"}') == {"task": "t", "chunks": None}, "an apply's record"


def test_a_timed_chunks_reply_is_its_seconds_then_its_values() -> None:
    reply = wire.timed_reply(0.25, [1, 4])
    assert reply == [0.25, [1, 4]]
    assert wire.read_timed_reply(reply) == (0.25, [1, 4])


def test_every_key_prefix_is_farpools_and_none_is_the_start_of_another() -> None:
    prefixes = [
        value
        for name, value in vars(wire).items()
        if name.endswith(("_PREFIX", "_KEY")) or name == "DISCARDED"
    ]
    assert len(prefixes) >= 9
    redis_prefixes = [prefix for prefix in prefixes if prefix != wire.SHARED_MEMORY_PREFIX]
    assert all(prefix.startswith("farpool-") for prefix in redis_prefixes)
    for prefix in redis_prefixes:
        assert [other for other in redis_prefixes if other != prefix and other.startswith(prefix)] == []


def test_the_workers_answer_the_commands_the_producers_send() -> None:
    for command in (wire.INFO_COMMAND, wire.REVOKE_COMMAND, wire.WATCH_COMMAND):
        assert command in Panel.data, command


def test_chunk_arguments_name_the_executor_and_only_what_is_set() -> None:
    assert chunk_arguments("t", [1], 5) == {"task": "t", "items": [1], "start": 5}
    assert chunk_arguments("t", [1], 0, timed=True, timeout=2.0) == {
        "task": "t",
        "items": [1],
        "start": 0,
        "timed": True,
        "timeout": 2.0,
    }
    assert (executor(star=False), executor(star=True)) == ("farpool.map_chunk", "farpool.starmap_chunk")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("tasks"), ids=lambda path: str(path.relative_to(ROOT)))
def test_tasks_names_no_producer_module(path: Path) -> None:
    """The workers' package stands alone: no import of the producer, no producer module by name."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("producer"), (path, node.lineno)
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("producer") for alias in node.names), (path, node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not re.fullmatch(r"producer(\.\w+)+(:\w+)?", node.value), (path, node.lineno, node.value)


# -- the Lua scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_is_assembled_with_its_includes_once_and_defined_before_use(name: str) -> None:
    text = script(name).text
    assert not INCLUDE.search(text), "every include is in place"
    defined = re.findall(r"^local function (\w+)", text, re.MULTILINE)
    assert len(defined) == len(set(defined)), f"an include twice: {defined}"
    for function in defined:
        assert text.index(f"local function {function}") < text.index(f"{function}(", text.index(function) + 1)
    assert script(name) is script(name), "read once"


def test_the_message_decoding_is_written_once() -> None:
    assert [path.name for path in LUA.glob("*.lua") if "cjson.decode" in path.read_text()] == [
        "lib_message.lua"
    ]
    assert "message_id" in script("withdraw").text and "message_id" in script("missing").text


def test_the_scripts_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.lua" in pyproject["tool"]["setuptools"]["package-data"]["tasks.lua"]


def test_no_lua_is_left_in_python_strings() -> None:
    for path in [*modules("tasks"), *modules("producer")]:
        assert "redis.call(" not in path.read_text(), path


# -- chunk sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "processes", "expected"), [(0, 4, 0), (1, 4, 1), (16, 4, 1), (17, 4, 2), (100, 3, 9)]
)
def test_the_default_chunksize_is_multiprocessings(length: int, processes: int, expected: int) -> None:
    assert default_chunksize(length, processes) == expected


def test_split_and_star_items() -> None:
    assert split([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert star_items([(1, 2), [3]]) == [[1, 2], [3]]
    with pytest.raises(TypeError, match="starmap item 1 is int"):
        star_items([(1,), 2])


def test_the_sizer_grows_chunks_until_their_work_dwarfs_the_round_trip() -> None:
    sizer = ChunkSizer()
    assert sizer.size == 1
    sizer.observe(1, compute=0.001, round_trip=0.002)  # 1 ms an item, 1 ms of overhead
    assert sizer.size == ChunkSizer.MAX_GROWTH, "at most 16 times larger at each step"
    for _ in range(5):
        sizer.observe(sizer.size, compute=0.001 * sizer.size, round_trip=0.001 * sizer.size + 0.001)
    assert sizer.size == 20, "20 round trips of work: the overhead is 5 %"


def test_the_sizer_keeps_the_smallest_overhead_seen_and_bounds_the_items() -> None:
    sizer = ChunkSizer()
    sizer.observe(1, compute=0.0, round_trip=0.5)  # queued for a while
    sizer.observe(1, compute=0.0, round_trip=0.01)
    assert sizer.overhead == pytest.approx(0.01)
    for _ in range(10):
        sizer.observe(sizer.size, compute=1e-9 * sizer.size, round_trip=0.01)
    assert sizer.size == ChunkSizer.MAX_ITEMS
