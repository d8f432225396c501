"""The Celery app, configured from farpool's settings when its configuration is first needed."""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cached_property
from typing import Any

import click
from celery import Celery, signals

try:
    from config import BUILT_IN_ALLOWED, Settings, SettingsError, celery_config, load_settings
except ImportError as error:  # a project's own config.py, found first (celery puts its folder first)
    raise ImportError(
        f"{error.path or 'a module named config'} takes the place of farpool's `config` package "
        "(one module per name in Python): rename it, for example to my_config.py, and its imports"
    ) from None
from tasks import held
from tasks.backend import backend_setting
from tasks.encoding import register_serializer
from tasks.payload import pending_results
from tasks.references import mark_importing_user_code
from tasks.transport import transport_setting
from tasks.watch import SentEvents


class FarpoolCelery(Celery):
    """A Celery app built from farpool settings: given, or read from the environment on first use.

    Nothing is read at construction: a bad FARPOOL_* value raises SettingsError where the
    settings are first needed (a Pool, a send), or, under `celery -A tasks worker|flower`,
    is printed as one line and exits with status 2.
    """

    amqp_cls = "tasks.transport:AMQP"  # its Connection prints the broker URL as written
    control_cls = "tasks.watch:FarpoolControl"  # Flower's enable_events: task events while it watches
    events_cls = "tasks.watch:FarpoolEvents"  # an event receiver of this app marks the cluster watched

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        options.setdefault("task_cls", "tasks.payload:FarpoolTask")  # arrays in, arrays out
        super().__init__("farpool", **options)
        self._farpool_settings = settings
        self.sent_events = SentEvents()
        signals.import_modules.connect(self._before_user_modules, sender=self)
        signals.worker_init.connect(self._after_user_modules)
        signals.task_prerun.connect(self._before_task)
        signals.task_postrun.connect(_after_task)
        signals.worker_process_shutdown.connect(self._process_ends)

    def _before_user_modules(self, **_: Any) -> None:
        """The worker is about to import its modules: find them in FARPOOL_IMPORT_PATH too.

        The folders go last on sys.path, so a user's own tasks.py or config.py there never
        takes the place of farpool's packages.
        """
        folders = dict.fromkeys([*self.settings.import_path, *self.settings.local_import_path])
        sys.path.extend(folder for folder in folders if folder not in sys.path)
        missing = next((name for name in self.settings.include if not _findable(name)), None)
        if missing is not None:
            self._cannot_import(missing)
        mark_importing_user_code(True)

    def _cannot_import(self, module: str) -> None:
        """One line naming the module and where it was looked for: exit 2 under `celery`."""
        folders = ", ".join(dict.fromkeys(folder or os.getcwd() for folder in sys.path))
        where = os.pathsep.join(self.settings.import_path) or "(unset)"
        message = (
            f"FARPOOL_INCLUDE: module {module!r} cannot be imported: no folder searched holds it "
            f"(FARPOOL_IMPORT_PATH={where}; sys.path with it: {folders}); "
            f"set FARPOOL_IMPORT_PATH to the folder that holds {module.replace('.', '/')}.py"
        )
        if _inside_celery_command():
            click.echo(f"farpool: {message}", err=True)
            raise SystemExit(2)
        raise ImportError(message, name=module)

    def _after_user_modules(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is self:
            mark_importing_user_code(False)

    def _before_task(self, task: Any = None, task_id: str | None = None, **_: Any) -> None:
        """A redelivered message may run twice: its results' backend keeps the first only."""
        if task is None or task_id is None or getattr(task, "app", None) is not self:
            return
        delivery = task.request.delivery_info or {}
        if delivery.get("redelivered"):
            self.backend.expect_twin(task_id)  # type: ignore[attr-defined]

    def _process_ends(self, **_: Any) -> None:
        """A worker process ends: result arrays it still holds for a producer go to Redis."""
        if held.holding():
            held.spill(self.backend.client, self.settings.result_expires)

    def close(self) -> None:
        """Celery's, and the result backend's connections closed, its subscriptions forgotten."""
        backend = self._backend  # None: no backend made yet
        if backend is not None:
            forget = getattr(backend, "forget_subscriptions", None)
            if forget is not None:
                forget()
            client = backend.__dict__.get("client")  # only a client already made
            if client is not None:
                client.connection_pool.disconnect()
        super().close()

    @cached_property
    def Worker(self) -> Any:
        """Celery's worker program, with farpool's banner and start-up checks (tasks/worker.py)."""
        return self.subclass_with_self("tasks.worker:Worker")

    @property
    def settings(self) -> Settings:
        if self._farpool_settings is None:
            try:
                self._farpool_settings = load_settings()
            except SettingsError as error:
                if _inside_celery_command():
                    click.echo(f"farpool: {error}", err=True)
                    raise SystemExit(2) from None
                raise
        return self._farpool_settings

    @property
    def allowlist(self) -> tuple[str, ...]:
        """The modules whose plain functions this app's workers call by reference."""
        return (*BUILT_IN_ALLOWED, *self.settings.include, *self.settings.allow)

    def _load_config(self) -> Any:
        settings = self.settings  # raises before Celery marks the app configured
        register_serializer()
        if self._config_source is None:
            conf = celery_config(settings)
            conf["result_backend"] = backend_setting(settings.backend_url)
            if settings.consume_path == "farpool":
                conf["broker_transport"] = transport_setting(settings.broker_url)
            self.config_from_object(conf)
        return super()._load_config()


def _after_task(task_id: str | None = None, **_: Any) -> None:
    """The task's result is stored (or was not to be): its arrays' bytes are no longer needed."""
    if task_id is not None:
        pending_results.pop(task_id, None)


def _findable(module: str) -> bool:
    """True if `module` can be found for import (its parent packages are imported to look)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _inside_celery_command() -> bool:
    """True while Celery's own command line (`celery -A tasks ...`) runs in this process."""
    context = click.get_current_context(silent=True)
    return context is not None and context.find_root().command.name == "celery"


def create_app(settings: Settings) -> FarpoolCelery:
    """A Celery app of its own for `settings` (the tests run several clusters in one process)."""
    return FarpoolCelery(settings, set_as_current=False)


# What `celery -A tasks worker` runs and what `from tasks import app` registers tasks on.
app = FarpoolCelery()
