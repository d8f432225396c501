"""The error a worker raises for a message it will not run (its own module: the decoders of
tasks/arrays.py raise it too, and import nothing else of farpool's)."""


class RefusedTask(ValueError):
    """A message named a task or function this worker will not run, or carried a value it will
    not rebuild; nothing ran."""
