"""A listed module that imports what it must never let a message call (tests/test_references.py)."""

from __future__ import annotations

import os  # noqa: F401 - `userhelpers:os.system` must be refused
import subprocess  # noqa: F401
from os import system  # noqa: F401 - a builtin imported here
from subprocess import run  # noqa: F401 - a Python function defined in subprocess, imported here


class Shape:
    def area(self) -> int:
        return 1


def outer() -> object:
    def inner(x: int) -> int:
        return x

    return inner


nested = outer()
triple = lambda x: 3 * x  # noqa: E731 - a lambda bound to a name is still not a plain def


def touch(path: str) -> str:
    open(path, "w").close()
    return path
