"""Each private Celery or kombu API farpool depends on (tasks/celery_internals.py) still exists, with
the parameters farpool passes or receives: a Celery or kombu release that changes one fails here,
naming it and what farpool needs of it."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tasks.celery_internals import CHECKED, INTERNALS, Internal

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            found = inspect.getattr_static(found, name)
        return found
    raise ImportError(path)


def unwrapped(found: Any) -> Any:
    """The function behind a property, cached_property, staticmethod or classmethod."""
    for attribute in ("fget", "func", "__func__"):
        if hasattr(found, attribute):
            return getattr(found, attribute)
    return found


def leading_parameters(function: Any) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return names[1:] if names and names[0] in ("self", "cls") else names


def what(internal: Internal) -> str:
    return f"{internal.path} ({internal.kind}, {internal.used_in}: {internal.why})"


@pytest.mark.parametrize("internal", INTERNALS, ids=lambda internal: f"{internal.path}:{internal.kind}")
def test_the_internal_farpool_depends_on_is_still_there(internal: Internal) -> None:
    try:
        found = resolve(internal.path)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"gone from this Celery/kombu: {what(internal)}: {error}")
    if internal.parameters is not None:
        names = leading_parameters(unwrapped(found))
        assert names[: len(internal.parameters)] == list(internal.parameters), (
            f"its parameters changed to {names}, farpool expects {list(internal.parameters)} first: "
            f"{what(internal)}"
        )
    if internal.holds is not None:
        if isinstance(found, (str, list, tuple)):
            holds = internal.holds in found
        else:
            holds = internal.holds in inspect.getsource(unwrapped(found))
        assert holds, f"no longer holds {internal.holds!r}: {what(internal)}"


def test_pyproject_pins_the_versions_the_internals_were_checked_against() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package, (lowest, below) in CHECKED.items():
        pins = [d for d in dependencies if re.match(rf"{package}(\[[^]]*\])?[<>=]", d)]
        assert len(pins) == 1 and pins[0].endswith(f">={lowest},<{below}"), (package, pins, CHECKED)


def test_the_installed_celery_and_kombu_are_the_checked_ones() -> None:
    for package, (lowest, below) in CHECKED.items():
        version = tuple(int(part) for part in importlib.metadata.version(package).split(".")[:2])
        assert tuple(map(int, lowest.split("."))) <= version < tuple(map(int, below.split("."))), package
