"""The shell examples of the README and the docs' pages are today's real output: run against a
throwaway cluster. (The README's quick start, which starts clusters of its own, is
tests/test_walkthrough.py's.)"""

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

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The quick start's region of the README (also the docs' Quick start page, by pymdownx.snippets).
WALKTHROUGH = re.compile(
    r"<!-- --8<-- \[start:walkthrough\] -->.*?<!-- --8<-- \[end:walkthrough\] -->", re.DOTALL
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Lines that differ from run to run: the worker's name, pids, load and memory.
VARIABLE = re.compile(r"^(farpool-local-|broker )")


@dataclass
class Example:
    command: str
    expected: list[str] = field(default_factory=list)


def documents() -> list[Path]:
    """The README, then the docs' pages: every text whose examples must stay true."""
    return [README, *sorted(DOCS.glob("*.md"))]


def console_examples() -> list[Example]:
    examples: list[Example] = []
    text = "\n".join(WALKTHROUGH.sub("", path.read_text()) for path in documents())
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
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


def test_the_readme_and_the_docs_have_console_examples() -> None:
    assert len(console_examples()) >= 8


# [text](target) outside code: the README's links into the docs (mkdocs checks the pages' own).
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """The ids of a page's headings, as GitHub and MkDocs' toc both make them."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    ids = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        plain = re.sub(r"[`*]", "", heading).lower()
        ids.add(re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", plain).strip()))
    return ids


def test_every_link_of_the_readme_reaches_a_file_and_its_heading() -> None:
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.DOTALL)
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = ROOT / path if path else README
        if not page.exists() or (anchor and anchor not in anchors(page)):
            broken.append(target)
    assert broken == []
    assert "docs/usage.md" in text and "docs/configuration.md" in text


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


def test_the_configuration_page_lists_every_setting_and_no_other() -> None:
    """docs/configuration.md's table names each field of config.Settings (`_PORT` after the
    `FARPOOL_FLOWER_ADDRESS /` row stands for FARPOOL_FLOWER_PORT), and only those."""
    from config import Settings

    rows = re.findall(
        r"^\| (FARPOOL_\w+)(?: / (_\w+))? \|", (DOCS / "configuration.md").read_text(), re.MULTILINE
    )
    listed = {
        name for first, second in rows for name in (first, first.rsplit("_", 1)[0] + second if second else "")
    }
    fields = {f"FARPOOL_{name.upper()}" for name in Settings.model_fields}
    assert listed - {""} == fields
    shown_first = set(re.findall(r"^\| (FARPOOL_\w+) \|", README.read_text(), re.MULTILINE))
    assert shown_first and shown_first <= fields  # the README's short table
