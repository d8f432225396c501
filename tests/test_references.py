"""Plain functions by reference: every Pool call takes one; outside the allowlist, nothing runs."""

from __future__ import annotations

import functools
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import userhelpers
import usertasks
from conftest import Cluster

from producer import Pool, Process
from producer.sending.references import function_reference
from tasks import RefusedTask
from tasks.contract import CALL, MAP_CHUNK, STARMAP_CHUNK, chunk_arguments
from tasks.references import resolve

ALLOWLIST = ("tasks.examples", "usertasks", "userhelpers")


def test_every_pool_call_takes_a_plain_function(module_pool: Pool) -> None:
    cube, power = usertasks.plain_cube, usertasks.plain_power
    assert module_pool.map(cube, range(10), 3) == [x**3 for x in range(10)]
    assert module_pool.starmap(power, [(2, 3), (3, 2)]) == [8, 9]
    assert list(module_pool.imap(cube, range(7), 2)) == [x**3 for x in range(7)]
    assert sorted(module_pool.imap_unordered(cube, range(7))) == [x**3 for x in range(7)]
    assert module_pool.apply(power, (2,), {"exponent": 10}) == 1024
    assert module_pool.apply_async(cube, (4,)).get(60) == 64
    assert module_pool.map_async(cube, range(5)).get(60) == [x**3 for x in range(5)]
    assert module_pool.starmap_async(power, [(5, 1)]).get(60) == [5]
    assert module_pool.map(usertasks._private_double, [1, 2]) == [2, 4]


def test_process_takes_a_plain_function(cluster: Cluster, monkeypatch: Any) -> None:
    import producer.default_pool

    shared = cluster.pool()
    monkeypatch.setattr(producer.default_pool, "_pool", shared)
    process = Process(target=usertasks.plain_power, args=(3,), kwargs={"exponent": 3})
    process.start()
    process.join(60)
    assert (process.exitcode, process.result) == (0, 27)
    shared.terminate()


def nested_maker() -> Any:
    def nested(x: int) -> int:
        return x

    return nested


class Holder:
    def method(self, x: int) -> int:
        return x

    def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize(
    ("func", "why"),
    [
        (lambda x: x, "a lambda"),
        (userhelpers.triple, "a lambda"),
        (nested_maker(), "inside another function"),
        (Holder().method, "bound method"),
        (Holder.method, "inside a class"),
        (len, "builtins"),
        (userhelpers.system, "builtins"),
        (int, "builtins and classes"),
        (functools.partial(usertasks.plain_power, exponent=3), "partial"),
        (Holder(), "not a function"),
    ],
    ids=[
        "lambda",
        "named lambda",
        "nested",
        "bound method",
        "class function",
        "len",
        "os.system",
        "int",
        "partial",
        "callable object",
    ],
)
def test_what_cannot_travel_is_a_type_error_before_sending(module_pool: Pool, func: Any, why: str) -> None:
    with pytest.raises(TypeError, match=why) as raised:
        module_pool.map(func, [1])
    assert "define it with def at the top level" in str(raised.value)
    with pytest.raises(TypeError, match=why):
        module_pool.apply_async(func, (1,))


def test_a_function_travels_as_its_module_and_name() -> None:
    assert function_reference(usertasks.plain_cube) == "usertasks:plain_cube"
    # an imported function travels under the module that defines it, which must be listed
    assert function_reference(userhelpers.run) == "subprocess:run"


REFUSED = [
    ("os:system", "not in FARPOOL_INCLUDE"),
    ("builtins:exec", "not in FARPOOL_INCLUDE"),
    ("subprocess:run", "FARPOOL_INCLUDE=usertasks,userhelpers,subprocess"),
    ("userhelpers:os.system", "not the name of a function defined at the top level"),
    ("userhelpers:subprocess.run", "not the name of a function defined at the top level"),
    ("userhelpers:system", "builtin_function_or_method, not a plain function"),
    ("userhelpers:run", "subprocess.run, imported into 'userhelpers', not defined there"),
    ("userhelpers:triple", "imported into"),
    ("userhelpers:nested", "imported into"),
    ("userhelpers:Shape", "a type, not a plain function"),
    ("userhelpers:missing", "is nothing"),
    ("tasks.chunks:callable_for", "farpool's own module"),
    ("tasks.references:resolve", "farpool's own module"),
    ("celery.app.builtins:add_backend_cleanup_task", "not in FARPOOL_INCLUDE"),
]


@pytest.mark.parametrize(("reference", "why"), REFUSED, ids=[reference for reference, _ in REFUSED])
def test_the_allowlist_refuses_without_importing_or_calling(reference: str, why: str) -> None:
    with pytest.raises(RefusedTask, match=why) as refused:
        resolve(reference, ALLOWLIST)
    assert "from FARPOOL_INCLUDE and farpool's examples: tasks.examples, usertasks, userhelpers" in str(
        refused.value
    )


def test_a_listed_function_resolves_to_itself() -> None:
    assert resolve("usertasks:plain_cube", ALLOWLIST) is usertasks.plain_cube
    assert resolve("userhelpers:touch", ALLOWLIST) is userhelpers.touch


def _touch_messages(target: Path) -> list[tuple[str, dict[str, Any]]]:
    """Messages a hostile producer could push, each of which would create `target` if it ran."""
    path = str(target)
    shell = f"touch {path}"
    code = f"open({path!r}, 'w').close()"
    return [
        (MAP_CHUNK, dict(chunk_arguments("os:system", [shell], 0))),
        (MAP_CHUNK, dict(chunk_arguments("posix:system", [shell], 0))),
        (MAP_CHUNK, dict(chunk_arguments("builtins:exec", [code], 0))),
        (MAP_CHUNK, dict(chunk_arguments("userhelpers:system", [shell], 0))),
        (MAP_CHUNK, dict(chunk_arguments("userhelpers:os.system", [shell], 0))),
        (STARMAP_CHUNK, dict(chunk_arguments("userhelpers:run", [[["touch", path]]], 0))),
        (STARMAP_CHUNK, dict(chunk_arguments("userhelpers:subprocess.run", [[["touch", path]]], 0))),
        (CALL, {"function": "subprocess:run", "args": [["touch", path]]}),
        (CALL, {"function": "builtins:eval", "args": [code]}),
        (CALL, {"function": "notlisted:touch", "args": [path]}),
    ]


def test_messages_pushed_onto_the_queue_outside_the_allowlist_run_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    target = tmp_path / "ran"
    sent = [
        cluster.app.send_task(task, kwargs=kwargs, queue=cluster.settings.queue)
        for task, kwargs in _touch_messages(target)
    ]
    # the control: a listed function with the same effect does run
    control = cluster.app.send_task(
        CALL, kwargs={"function": "userhelpers:touch", "args": [str(tmp_path / "control")]}
    )
    assert control.get(timeout=60) == str(tmp_path / "control")
    for result in sent:
        error = result.get(timeout=60, propagate=False)
        assert isinstance(error, RefusedTask), (result.id, error)
        assert "allowed on this worker, from FARPOOL_INCLUDE" in str(error)
    assert not target.exists()
    for result in [*sent, control]:
        result.forget()


def test_a_module_the_worker_does_not_list_is_refused_naming_the_settings_and_worker(
    cluster: Cluster, module_pool: Pool
) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "unlisted"))
    try:
        import unlisted_module
    finally:
        sys.path.pop(0)
    with pytest.raises(RefusedTask) as refused:
        module_pool.map(unlisted_module.double, [1, 2])
    # Issue 23: the hint named FARPOOL_INCLUDE only (the worker then could not import the module)
    # and not the worker that refused.
    # Then it named the folder after the local cluster's own (its starter's working folder),
    # which no user sets: the worker's FARPOOL_IMPORT_PATH is unset here.
    folder = Path(unlisted_module.__file__).parent
    message = str(refused.value)
    include = (
        "start that worker with FARPOOL_INCLUDE=usertasks,userhelpers,userarrays,unlisted_module "
        f"FARPOOL_IMPORT_PATH={folder}"
    )
    assert message.endswith(include), message
    worker = cluster.local.node_name.replace("%h", socket.gethostname())
    assert f"refused by worker {worker}:" in str(refused.value), refused.value


def test_flower_labels_name_the_plain_function(cluster: Cluster) -> None:
    from producer.sending.canvas import map_signatures

    map_id = "1a2b3c4d-0000-4000-8000-000000000000"
    signatures = map_signatures(cluster.app, "pool_multiprocessing:square", [1, 2, 3], 2, False, None, map_id)
    labels = [signature.options["argsrepr"] for signature in signatures]
    # Issue 23: `square × 1 items [chunk 2/2]` said neither which map nor `1 item`
    assert labels == [
        "square × 2 items [map 1a2b3c4d, chunk 1/2]",
        "square × 1 item [map 1a2b3c4d, chunk 2/2]",
    ]
