"""The README's shell examples are today's real output: run against a throwaway cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Cluster, close_app

from config import load_settings
from producer.local.cluster import LocalCluster
from producer.local.embedded import EmbeddedServer
from tasks import create_app

README = Path(__file__).parent.parent / "README.md"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Lines that differ from run to run: the worker's name, pids, load and memory.
VARIABLE = re.compile(r"^(farpool-local-|broker )")


@dataclass
class Example:
    command: str
    expected: list[str] = field(default_factory=list)


def console_examples() -> list[Example]:
    examples: list[Example] = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                examples.append(Example(line[2:].split("  #")[0].strip()))
            elif examples:
                examples[-1].expected.append(line)
    return examples


# A line with a measured time or ratio: its numbers differ from run to run, its words do not.
TIMED = re.compile(r"\d(\.\d+)? ?(ms|µs|s|x)\b")
NUMBER = re.compile(r"\d+(\.\d+)?")


def comparable(lines: list[str]) -> list[str]:
    """The lines that can be compared, with runs of spaces as one (columns follow the names)."""
    kept = [line for line in lines if not UUID.search(line) and not VARIABLE.match(line)]
    kept = [NUMBER.sub("#", line) if TIMED.search(line) else line for line in kept]
    return [" ".join(line.split()) for line in kept]


def test_the_readme_has_console_examples() -> None:
    assert len(console_examples()) >= 8


@pytest.fixture(scope="module")
def plain_cluster(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A cluster as a new user has it: no FARPOOL_INCLUDE, farpool's examples only."""
    url = valkey_server.url
    settings = load_settings(
        broker_url=url,
        result_backend=url,
        queue=f"readme-{uuid.uuid4().hex[:8]}",
        concurrency=2,
        embedded_broker="never",
        data_dir=str(tmp_path_factory.mktemp("readme")),
    )
    app = create_app(settings)
    local = LocalCluster(settings, app)
    local.start_worker()
    yield Cluster("valkey", settings, app, local)
    local.stop()
    close_app(app)


def test_every_console_example_prints_what_the_readme_shows(plain_cluster: Cluster) -> None:
    cluster = plain_cluster
    bin_dir = str(Path(sys.executable).parent)
    env = {**cluster.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    ids: dict[str, str] = {}
    for example in console_examples():
        command = example.command
        for shown, real in ids.items():
            command = command.replace(shown, real)
        done = subprocess.run(
            ["bash", "-c", command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # interleaved, as a terminal shows them
            text=True,
            timeout=120,
        )
        output = done.stdout.splitlines()
        if example.expected and UUID.fullmatch(example.expected[0]) and output:
            ids[example.expected[0]] = output[0]  # `farpool submit` prints a new id each time
        shown = comparable(example.expected)
        assert comparable(output) == shown, f"$ {example.command}"
