"""The Celery app, configured from farpool's settings when its configuration is first needed."""

from __future__ import annotations

from typing import Any

import click
from celery import Celery

from config import Settings, SettingsError, celery_config, load_settings
from tasks.backend import backend_setting
from tasks.transport import transport_setting


class FarpoolCelery(Celery):
    """A Celery app built from farpool settings: given, or read from the environment on first use.

    Nothing is read at construction: a bad FARPOOL_* value raises SettingsError where the
    settings are first needed (a Pool, a send), or, under `celery -A tasks worker|flower`,
    is printed as one line and exits with status 2.
    """

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        super().__init__("farpool", **options)
        self._farpool_settings = settings

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

    def _load_config(self) -> Any:
        settings = self.settings  # raises before Celery marks the app configured
        if self._config_source is None:
            conf = celery_config(settings)
            conf["result_backend"] = backend_setting(settings.backend_url)
            conf["broker_transport"] = transport_setting(settings.broker_url)
            self.config_from_object(conf)
        return super()._load_config()


def _inside_celery_command() -> bool:
    """True while Celery's own command line (`celery -A tasks ...`) runs in this process."""
    context = click.get_current_context(silent=True)
    return context is not None and context.find_root().command.name == "celery"


def create_app(settings: Settings) -> FarpoolCelery:
    """A Celery app of its own for `settings` (the tests run several clusters in one process)."""
    return FarpoolCelery(settings, set_as_current=False)


# What `celery -A tasks worker` runs and what `from tasks import app` registers tasks on.
app = FarpoolCelery()
