"""farpool's settings: the only place environment variables are read."""

from config.celeryconfig import celery_config
from config.settings import (
    BUILT_IN_ALLOWED,
    DEMO_SCRIPT,
    Settings,
    SettingsError,
    is_loopback_url,
    load_settings,
    mask_url,
    settings_env,
)

__all__ = [
    "BUILT_IN_ALLOWED",
    "DEMO_SCRIPT",
    "Settings",
    "SettingsError",
    "celery_config",
    "is_loopback_url",
    "load_settings",
    "mask_url",
    "settings_env",
]
