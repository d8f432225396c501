"""The error a worker raises for a message it will not run (its own module: the decoders of
tasks/arrays.py raise it too, and import nothing else of farpool's)."""

from __future__ import annotations

FOLDER = "/the/folder/holding/it"  # in a refusal's hint, until a producer names the module's folder


class RefusedTask(ValueError):
    """A message named a task or function this worker will not run, or carried a value it will
    not rebuild; nothing ran.

    Its second argument, if any, is the module FARPOOL_INCLUDE lacks: the hint names its folder
    as FOLDER, which the producer, where the module was found, fills in (`with_folder`).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def module(self) -> str | None:
        return str(self.args[1]) if len(self.args) > 1 and self.args[1] else None

    def with_folder(self, folder: str) -> RefusedTask:
        """This refusal, its hint naming `folder` as the module's."""
        return RefusedTask(str(self).replace(FOLDER, folder), self.module)
