"""farpool's Lua scripts: each a file of this package (tasks/lua/*.lua), read once, run by its SHA.

A script names what it shares with others with `--! include <file>` lines (a `lib_*.lua` file of
local functions, included once, in place): the message decoding, the wake lists, the server's
clock. `script(name)` reads and assembles a script on first use (importing this module reads
nothing); calling it runs EVALSHA, and EVAL, which also caches it on the server, when the server
does not know it yet (a new or restarted one).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

INCLUDE = re.compile(r"^--! include (\w+)\n", re.MULTILINE)


def _source(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _assembled(name: str, included: set[str]) -> str:
    """The script's text with its includes in place, each file once."""

    def include(match: re.Match[str]) -> str:
        library = match.group(1)
        if library in included:
            return ""
        included.add(library)
        return _assembled(library, included)

    return INCLUDE.sub(include, _source(name))


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    sha: str

    def __call__(self, client: Any, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)


@functools.cache
def script(name: str) -> Script:
    """tasks/lua/<name>.lua, assembled."""
    text = _assembled(name, set())
    return Script(name, text, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())
