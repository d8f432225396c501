"""What an external program run on a worker returns (tasks/programs.py), as it travels back.

Its own module, importing nothing of farpool's, so that tasks/encoding.py can tag it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from typing import Any


class CompletedProgram(subprocess.CompletedProcess[Any]):
    """subprocess.CompletedProcess (args, returncode, stdout, stderr, check_returncode()), and
    `truncated`: the streams cut at tasks.programs.OUTPUT_CAP, ("stdout",) say; () when none was."""

    def __init__(
        self,
        args: Sequence[str],
        returncode: int,
        stdout: str | bytes | None = None,
        stderr: str | bytes | None = None,
        truncated: Iterable[str] = (),
    ) -> None:
        super().__init__(list(args), returncode, stdout, stderr)
        self.truncated: tuple[str, ...] = tuple(truncated)

    @property
    def notice(self) -> str:
        """What was cut, in words; empty when nothing was."""
        if not self.truncated:
            return ""
        return f"{' and '.join(self.truncated)} cut at the worker's output cap (tasks.programs.OUTPUT_CAP)"

    def __repr__(self) -> str:
        shown = super().__repr__()
        return shown[:-1] + f", truncated={self.truncated!r})" if self.truncated else shown

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompletedProgram):
            return NotImplemented
        return self.__json__() == other.__json__()

    __hash__ = None  # type: ignore[assignment]  # mutable, as CompletedProcess

    def __json__(self) -> list[Any]:
        """The arguments that rebuild it: args, returncode, stdout, stderr, truncated."""
        return [list(self.args), self.returncode, self.stdout, self.stderr, list(self.truncated)]
