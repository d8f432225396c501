"""Several hosts on one machine: network namespaces on a bridge, each with its own processes.

Every namespace and link the bed makes is named `fpt-...`, and every address is in
169.254.77.0/24 on the bridge it creates: no traffic leaves the bed. A host is a network
namespace with its own hostname (a UTS namespace per process), so Celery's node names and
`farpool cluster`'s host column tell the hosts apart. Cutting a host's link, SIGKILLing
everything in it (power loss) and tearing it all down are one call each; a leftover of an
earlier run is removed before a new bed starts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PREFIX = "fpt"
BRIDGE = f"{PREFIX}-br"
SUBNET = "169.254.77"
GATEWAY = f"{SUBNET}.1"  # the bridge's own address, in the test's namespace
FARPOOL_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs iproute2 (ip) and util-linux (unshare)"
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    probe = f"{PREFIX}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def _pids_in(namespace: str) -> list[int]:
    listed = ip("netns", "pids", namespace, check=False).stdout.split()
    return [int(pid) for pid in listed]


def _kill_all_in(namespace: str) -> None:
    for pid in _pids_in(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def clean_leftovers() -> None:
    """Remove every namespace and link an earlier bed left (a crashed or interrupted run)."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-"):
            _kill_all_in(name)
            ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(f"{PREFIX}-"):
            ip("link", "del", name, check=False)


class Host:
    """One host: a namespace with an address on the bridge, and the processes run in it."""

    def __init__(self, name: str, number: int, logs: Path) -> None:
        self.name = name
        self.namespace = f"{PREFIX}-{name}"
        self.address = f"{SUBNET}.{number}"
        self.link = f"{PREFIX}-v{number}"  # the bridge's end of the host's cable
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        ip("netns", "add", self.namespace)
        ip("link", "add", self.link, "type", "veth", "peer", "name", f"{PREFIX}-p{number}")
        ip("link", "set", f"{PREFIX}-p{number}", "netns", self.namespace)
        ip("link", "set", self.link, "master", BRIDGE)
        ip("link", "set", self.link, "up")
        ip("-n", self.namespace, "link", "set", "lo", "up")
        ip("-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", f"{PREFIX}-p{number}")
        ip("-n", self.namespace, "link", "set", f"{PREFIX}-p{number}", "up")

    def command(self, argv: list[str]) -> list[str]:
        """`argv` as run on this host: in its namespace, under its own hostname."""
        script = f'hostname {self.name} && exec "$@"'
        return ["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c", script, "sh", *argv]

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """A background process on this host, its output in `<logs>/<host>-<name>.log`."""
        log = open(self.logs / f"{self.name}-{name}.log", "ab")  # noqa: SIM115 - the child holds it
        with log:
            process = subprocess.Popen(
                self.command(argv),
                env=dict(env),
                cwd=FARPOOL_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def run(
        self, argv: list[str], env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """A command on this host, to its end; output captured."""
        return subprocess.run(
            self.command(argv),
            env=dict(env),
            cwd=FARPOOL_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cut(self) -> None:
        """Unplug the host's cable: its processes run on, and nothing reaches them."""
        ip("link", "set", self.link, "down")

    def heal(self) -> None:
        ip("link", "set", self.link, "up")

    def power_off(self) -> None:
        """Every process on the host SIGKILLed at once, as when it loses power."""
        _kill_all_in(self.namespace)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes = []

    def remove(self) -> None:
        self.power_off()
        ip("link", "del", self.link, check=False)
        ip("netns", "del", self.namespace, check=False)


class HostBed:
    """A bridge and the hosts on it; `close()` removes all of it."""

    def __init__(self, logs: Path) -> None:
        clean_leftovers()
        self.logs = logs
        self.hosts: dict[str, Host] = {}
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")

    def add(self, name: str) -> Host:
        host = Host(name, 10 + len(self.hosts), self.logs)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            host.remove()
        self.hosts = {}
        ip("link", "del", BRIDGE, check=False)
        clean_leftovers()


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
