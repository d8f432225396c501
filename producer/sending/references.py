"""Plain functions sent by reference ("module:name"): what can travel, and the script's own name.

A function defined at the top level of a module travels as its module and name; the worker
imports that module (if its allowlist admits it, tasks/references.py) and calls the function
found there. A function defined in the script being run (`__main__`) travels under the
script's own module name, as multiprocessing's spawn start method imports it.
"""

from __future__ import annotations

import functools
import importlib.machinery
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.contract import reference

WHAT_TO_DO = "define it with def at the top level of your script or of a module, and pass that function"


@dataclass(frozen=True)
class MainScript:
    """The running script as the workers import it: its module name and the folder it is in
    (for the CLI, the module its `module:function` names, in the current folder)."""

    module: str
    folder: str


def main_script() -> MainScript | None:
    """The script `python script.py` or `python -m package.module` runs; None in a REPL, or
    for a command without .py (`farpool`), which no worker could import."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", None):
        module = spec.name
        root = Path(spec.origin or ".").resolve().parents[module.count(".")]
        return MainScript(module, str(root))
    file = getattr(main, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if path.suffix != ".py":
        return None
    return MainScript(path.stem, str(path.parent))


FARPOOL_PACKAGES = ("tasks", "producer", "config")  # every worker has them: nothing to ask for


def working_folder_module(module: str) -> MainScript | None:
    """`module` (the CLI's `module:function`) as `python -c 'import module'` run here imports
    it from the current folder: its name and that folder, to allow as a script's; None if the
    folder holds no such module, or it is farpool's own."""
    top = module.partition(".")[0]
    try:
        folder = os.getcwd()
    except OSError:  # the folder was removed
        return None
    if top in FARPOOL_PACKAGES or importlib.machinery.PathFinder.find_spec(top, [folder]) is None:
        return None
    return MainScript(module, folder)


def module_folder(module: str) -> str | None:
    """The folder a worker's FARPOOL_IMPORT_PATH needs to import `module` as this process did,
    or, if it has not imported it, as Python would from the current folder; None if neither
    (or it is no file)."""
    script = main_script()
    if script is not None and script.module == module:
        return script.folder
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        found = working_folder_module(module)
        return found.folder if found is not None else None
    path = Path(file).resolve()
    return str(path.parents[module.count(".") + (1 if path.name == "__init__.py" else 0)])


def _cannot_travel(func: Any, why: str) -> TypeError:
    return TypeError(f"{func!r} cannot be sent to the workers: {why}; {WHAT_TO_DO}")


def function_reference(func: Any) -> str:
    """The reference the workers resolve for plain function `func`; TypeError if it cannot travel.

    Only a name travels, never code: a lambda, a nested function or closure, a method, a
    builtin, a partial or a callable object has no module-level name the workers could find.
    """
    if isinstance(func, types.MethodType):
        raise _cannot_travel(func, "a bound method needs its object, and only a name travels")
    if isinstance(func, types.BuiltinFunctionType | types.BuiltinMethodType | type):
        raise _cannot_travel(func, "builtins and classes are not in the workers' allowlist")
    if isinstance(func, functools.partial):
        raise _cannot_travel(func, "a partial carries arguments, and only a name travels")
    if not isinstance(func, types.FunctionType):
        raise _cannot_travel(func, "it is not a function (only functions and Celery tasks can be called)")
    name: str = func.__name__
    if name == "<lambda>":
        raise _cannot_travel(func, "a lambda has no name the workers can import")
    if "<locals>" in func.__qualname__:
        raise _cannot_travel(func, "it is defined inside another function, where the workers cannot find it")
    if func.__qualname__ != name:
        raise _cannot_travel(func, "it is defined inside a class, where the workers cannot find it")
    module_name = func.__module__
    module = sys.modules.get(module_name)
    if module is None or vars(module).get(name) is not func:
        raise _cannot_travel(func, f"{module_name}.{name} is no longer this function")
    if module_name == "__main__":
        script = main_script()
        if script is None:
            raise _cannot_travel(func, "functions typed at the interactive prompt are in no file to import")
        module_name = script.module
        if not all(part.isidentifier() for part in module_name.split(".")):
            raise _cannot_travel(func, f"the script's name {module_name!r} cannot be imported as a module")
    return reference(module_name, name)


def script_task_reference(function: Any) -> str | None:
    """For a task defined in the script (`__main__`), the reference its worker resolves.

    A worker imports the script under its own name, so it registers the script's tasks under
    other names than the script does (an unnamed task is `<app main>.<function>` here): such a
    task travels by reference, like a plain function, and the worker calls the task it finds.
    """
    name = getattr(function, "__name__", None)
    script = main_script()
    if getattr(function, "__module__", None) != "__main__" or script is None or name is None:
        return None
    return reference(script.module, name)
