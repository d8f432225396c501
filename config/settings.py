"""Typed farpool settings, read from FARPOOL_* environment variables (and `.env`)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psutil
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BROKER_SCHEMES = ("redis", "rediss", "sentinel")
ENV_PREFIX = "FARPOOL_"
# The seed's script as farpool ships it beside the producer (`farpool demo`): every worker may call
# its square. Named here, with the rest of what every worker admits, so that `tasks` names no
# producer module.
DEMO_SCRIPT = "producer.demo.pool_multiprocessing"
# What every worker's allowlist admits besides FARPOOL_INCLUDE and FARPOOL_ALLOW (tasks/references.py):
# farpool's examples, tasks.programs (its `run` runs only the programs each worker lists,
# FARPOOL_PROGRAMS, empty by default) and the seed's script.
BUILT_IN_ALLOWED = ("tasks.examples", "tasks.programs", DEMO_SCRIPT)
CORE_KINDS = ("physical", "logical")


class SettingsError(ValueError):
    """A FARPOOL_* variable has a value farpool cannot use; the message names it."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe to print or log."""
    return ";".join(_mask_one(part) for part in url.split(";"))


def is_loopback_url(url: str) -> bool:
    """True if the URL's host is this machine (localhost, 127.0.0.0/8, ::1); no host means localhost."""
    host = urlsplit(url).hostname or "localhost"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mask_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]  # as written: a bad port is shown, not parsed
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def core_count(kind: str) -> int:
    """This machine's physical cores (one per core, whatever its hardware threads) or logical
    CPUs (every hardware thread), as the kernel reports them; logical when physical is unknown."""
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    if kind == "logical":
        return logical
    return psutil.cpu_count(logical=False) or logical


def default_data_dir() -> str:
    """This user's data folder for farpool (~/.local/share/farpool on Linux, as XDG_DATA_HOME
    says), where other tools keep theirs: a script run leaves nothing in the folder it runs from.
    Computed when settings are read, never at import."""
    import platformdirs  # 10 ms, and only needed when no FARPOOL_DATA_DIR is set

    return platformdirs.user_data_dir("farpool", appauthor=False)


def _check_redis_url(url: str, what: str) -> str:
    for part in url.split(";"):
        parts = urlsplit(part)
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError(f"the port in URL {mask_url(part)!r} is not a number from 0 to 65535") from None
        scheme = parts.scheme
        if scheme not in BROKER_SCHEMES:
            accepted = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
            raise ValueError(
                f"unsupported scheme {scheme + '://' if scheme else '(none)'} in "
                f"{mask_url(part)!r}: {what} must be one of {accepted}"
            )
        if scheme == "rediss" and "ssl_cert_reqs" not in parse_qs(parts.query):
            raise ValueError(
                f"{mask_url(part)!r} needs ?ssl_cert_reqs=required (or optional, none): "
                "without it the connection would skip certificate checks"
            )
    return url


class Settings(BaseSettings):
    """Everything configurable in farpool; field `x` is the variable FARPOOL_X."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True)

    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str | None = None
    # A number, or `physical` / `logical`: this machine's count, resolved where the settings are read
    concurrency: int = Field(default_factory=lambda: core_count("logical"), ge=1)
    embedded_broker: Literal["auto", "never"] = "auto"
    include: Annotated[tuple[str, ...], NoDecode] = ()
    allow: Annotated[tuple[str, ...], NoDecode] = ()
    import_path: Annotated[tuple[str, ...], NoDecode] = ()
    # Set by a local cluster on its worker: the folders it adds after import_path (its starter's
    # working folder, the script's), which a refusal's hint does not repeat as the user's own
    local_import_path: Annotated[tuple[str, ...], NoDecode] = ()
    # Set by a local cluster on its worker: call the scripts this machine's pools ask for
    # (tasks/script_requests.py)
    script_requests: bool = False
    programs: Annotated[tuple[str, ...], NoDecode] = ()
    queue: str = Field(default="farpool", min_length=1)
    visibility_timeout: int = Field(default=3600, ge=1)
    # farpool: one atomic take into the consumer's in-flight list, back when its consumer is gone
    # (tasks/inflight.py). kombu: Celery's stock Redis transport, kept to compare side by side
    # (make stress, make bench): a take then a record, back after the visibility timeout.
    consume_path: Literal["farpool", "kombu"] = "farpool"
    result_expires: int = Field(default=86400, ge=1)
    # The largest array (or put value) farpool sends, in bytes: Redis's own limit for one value
    # (proto-max-bulk-len) is 512 MiB.
    max_payload: int = Field(default=512 * 1024 * 1024, ge=1, le=512 * 1024 * 1024)
    # auto: a producer whose workers all run on its machine shares arrays in memory files
    # (tasks/shared_memory.py); never: arrays always go through Redis.
    shared_memory: Literal["auto", "never"] = "auto"
    broker_timeout: int = Field(default=60, ge=1)
    prefetch_multiplier: int = Field(default=1, ge=1)
    # The bundled broker's files, the local cluster's log and records of what runs (`farpool down`)
    data_dir: str = Field(default_factory=default_data_dir, min_length=1)
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_basic_auth: str | None = None
    sentinel_master: str | None = None
    sentinel_password: str | None = None

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, url: str) -> str:
        return _check_redis_url(url, "the broker URL")

    @field_validator("result_backend")
    @classmethod
    def _backend_scheme(cls, url: str | None) -> str | None:
        return None if not url else _check_redis_url(url, "the result backend URL")

    @field_validator("concurrency", mode="before")
    @classmethod
    def _core_kind(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in CORE_KINDS:
            return core_count(value.strip().lower())
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise ValueError("a whole number of processes, or `physical` or `logical` (this host's count)")
        return value

    @field_validator("include", "allow", "programs", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("import_path", "local_import_path", mode="before")
    @classmethod
    def _split_folders(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(folder for folder in value.split(os.pathsep) if folder)
        return value

    @model_validator(mode="after")
    def _derive_backend(self) -> Settings:
        if self.result_backend is None:
            object.__setattr__(self, "result_backend", default_backend_for(self.broker_url))
        for name, url in (("BROKER_URL", self.broker_url), ("RESULT_BACKEND", self.result_backend)):
            if url and url.startswith("sentinel://") and not self.sentinel_master:
                raise ValueError(
                    f"{ENV_PREFIX}SENTINEL_MASTER: required when {ENV_PREFIX}{name} is sentinel://"
                )
        return self

    @property
    def backend_url(self) -> str:
        assert self.result_backend is not None
        return self.result_backend


def default_backend_for(broker_url: str) -> str:
    """The broker's own server (each sentinel of a sentinel:// list), database 1."""
    return ";".join(urlunsplit(urlsplit(part)._replace(path="/1")) for part in broker_url.split(";"))


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; a bad value is a one-line SettingsError naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a rule across variables: its message names them
            raise SettingsError(message) from None
        field = str(first["loc"][0])
        raw = os.environ.get(ENV_PREFIX + field.upper())
        shown = f" (got {mask_url(raw)!r})" if raw is not None and "URL" not in message else ""
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}: {message}{shown}") from None


def settings_env(settings: Settings) -> dict[str, str]:
    """The FARPOOL_* variables that reproduce `settings` in a child process (a worker)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = (os.pathsep if name.endswith("import_path") else ",").join(value)
        env[ENV_PREFIX + name.upper()] = str(value)
    return env
