"""The Celery app, built from farpool's settings."""

from __future__ import annotations

import sys

from celery import Celery

from config import Settings, SettingsError, celery_config, load_settings
from tasks import redis_clients
from tasks.backend import backend_setting

redis_clients.install()


class FarpoolCelery(Celery):
    """A Celery app that remembers the farpool settings it was built from."""

    settings: Settings


def create_app(settings: Settings) -> FarpoolCelery:
    """A Celery app configured from `settings`, its task modules imported."""
    app = FarpoolCelery("farpool", set_as_current=False)
    app.settings = settings
    conf = celery_config(settings)
    conf["result_backend"] = backend_setting(settings.backend_url)
    app.config_from_object(conf)
    return app


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"farpool: {error}", file=sys.stderr)
        raise SystemExit(2) from None


app = create_app(_settings_or_exit())
app.set_current()
app.set_default()
