"""A user's own tasks.py or config.py where Python would take it for farpool's package.

farpool's packages are the top-level `tasks` and `config`, and Python has one module per name:
a tasks.py or config.py in the script's folder (first on sys.path) would be imported instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

FARPOOL_ROOT = Path(__file__).resolve().parent.parent  # the folder holding tasks/, producer/, config/
FARPOOL_PACKAGES = ("tasks", "config")


def shadowing_file(package: str) -> str | None:
    """The file Python imports (or imported) as `package` when it is not farpool's own."""
    module = sys.modules.get(package)
    origin: str | None
    if module is not None:
        origin = getattr(module, "__file__", None)
    else:
        spec = importlib.util.find_spec(package)
        origin = spec.origin if spec is not None else None
    if origin is None or Path(origin).resolve() == FARPOOL_ROOT / package / "__init__.py":
        return None
    return origin


def check_own_packages() -> None:
    """ImportError naming the file that takes the place of farpool's `tasks` or `config`."""
    for package in FARPOOL_PACKAGES:
        origin = shadowing_file(package)
        if origin is not None:
            raise ImportError(
                f"{origin} takes the place of farpool's `{package}` package (one module per "
                f"name in Python): rename it, for example to my_{package}.py, and its imports"
            )
