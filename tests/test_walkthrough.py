"""The README's quick start, run as a reader runs it, in three terminals: the commands it shows
print what it shows.

Each ```console title="terminal N"``` block runs in terminal N, which keeps its own folder. A
command marked `# runs until Ctrl-C` stays running: its block shows some of its output, in
order, `...` for lines left out (never two lines that two processes print at once); a later
block of the same terminal may show more of its output, or `^C` (SIGINT to its process group,
as a terminal sends it). Every other command runs to its end and must print exactly the lines
shown. The reader's machine is a fresh one: the broker URL's port is a free one here (shown as
the default, 6379), the data folder and the home folder are temporary, and nothing reaches the
machine's own Redis.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import fresh_machine_env, poll

from producer.local.children import kill_process_group

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
WALKTHROUGH = re.compile(
    r"<!-- --8<-- \[start:walkthrough\] -->(.*?)<!-- --8<-- \[end:walkthrough\] -->", re.DOTALL
)
BLOCK = re.compile(r'```console title="terminal (\d+)"\n(.*?)```', re.DOTALL)
RUNS_ON = "# runs until Ctrl-C"
STEP_TIMEOUT = 90.0


@dataclass
class Step:
    terminal: int
    command: str | None = None  # None: more output of the terminal's running command, or ^C
    interrupt: bool = False
    expected: list[str] = field(default_factory=list)

    @property
    def stays_running(self) -> bool:
        return self.command is not None and RUNS_ON in self.command


def steps() -> list[Step]:
    found = WALKTHROUGH.search(README.read_text())
    assert found, "the README's quick start has lost its snippet markers"
    parsed: list[Step] = []
    for terminal, block in BLOCK.findall(found.group(1)):
        lines = iter(block.splitlines())
        step: Step | None = None
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                if command.endswith("<<'EOF'"):  # a here-document: its lines are the command's
                    body = []
                    for more in lines:
                        body.append(more)
                        if more == "EOF":
                            break
                    command = "\n".join([command, *body])
                step = Step(int(terminal), command)
                parsed.append(step)
            elif line == "^C":
                step = Step(int(terminal), interrupt=True)
                parsed.append(step)
            else:
                if step is None:
                    step = Step(int(terminal))
                    parsed.append(step)
                step.expected.append(line)
    return parsed


class Reader:
    """A reader's three terminals on a fresh machine, and what their commands printed."""

    def __init__(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        farpool = fresh_machine_env(str(tmp_path / "data"), concurrency=2, HOME=str(home))
        base = {k: v for k, v in os.environ.items() if not k.startswith("FARPOOL_") and k != "PYTHONPATH"}
        self.env = {**base, **{k: v for k, v in farpool.items() if k.startswith("FARPOOL_") or k == "HOME"}}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        # Python writes to a terminal line by line; to the pipe here it would hold stdout back
        # until exit, after stderr's lines (make demo's notice would come before `Dataset:`).
        self.env["PYTHONUNBUFFERED"] = "1"
        self.port = int(self.env["FARPOOL_BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
        self.tmp = tmp_path
        self.folders: dict[int, Path] = {}
        self.running: dict[int, tuple[subprocess.Popen[bytes], Path, list[str]]] = {}

    def normal(self, lines: list[str]) -> list[str]:
        """Lines as comparable on any machine: this run's port, times, pids, host name and ids."""
        rules = [
            (rf"127\.0\.0\.1:{self.port}\b", "127.0.0.1:6379"),
            (r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}:", "[TIME:"),
            (r"farpool-local-\d+-[0-9a-f]+", "farpool-local-ID"),
            (rf"@{re.escape(socket.gethostname())}\b", "@vm"),
            (r"\(pid \d+\)", "(pid N)"),
        ]
        out = []
        for line in lines:
            for pattern, replacement in rules:
                line = re.sub(pattern, replacement, line)
            out.append(" ".join(line.split()))
        return out

    def run(self, step: Step) -> None:
        folder = self.folders.setdefault(step.terminal, ROOT)
        if step.command is None:
            self.more_output(step)
        elif step.command.startswith("source "):
            assert step.command.split()[1] == ".venv/bin/activate"  # this test's PATH has it first
        elif step.stays_running:
            self.start(step, folder)
        else:
            self.complete(step, folder)

    def command(self, step: Step) -> str:
        assert step.command is not None
        if step.command.strip() == "make demo":  # the recipe itself: no reinstall of a stale .venv here
            assert "\t@$(VENV)/bin/farpool demo\n" in (ROOT / "Makefile").read_text()
            return "farpool demo"
        return step.command

    def complete(self, step: Step, folder: Path) -> None:
        where = self.tmp / f"pwd-{step.terminal}"
        done = subprocess.run(
            ["bash", "-c", f"{self.command(step)}\npwd > {shlex.quote(str(where))}"],
            cwd=folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # interleaved, as a terminal shows them
            text=True,
            timeout=STEP_TIMEOUT,
        )
        assert done.returncode == 0, f"$ {step.command}\n{done.stdout}"
        assert self.normal(done.stdout.splitlines()) == self.normal(step.expected), f"$ {step.command}"
        self.folders[step.terminal] = Path(where.read_text().strip())

    def start(self, step: Step, folder: Path) -> None:
        log = self.tmp / f"terminal-{step.terminal}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["bash", "-c", self.command(step)],
                cwd=folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal's foreground job
            )
        self.running[step.terminal] = (process, log, [])
        self.more_output(step)

    def more_output(self, step: Step) -> None:
        assert step.terminal in self.running, f"terminal {step.terminal} runs nothing: {step.expected}"
        process, log, shown = self.running[step.terminal]
        if step.interrupt:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole foreground job
        shown += [line for line in self.normal(step.expected) if line and line != "..."]

        def printed() -> bool:
            lines = iter(self.normal(log.read_text(errors="replace").splitlines()))
            return all(any(line == seen for seen in lines) for line in shown)  # in this order

        try:
            poll(printed, f"terminal {step.terminal} printing {shown[-1:]}", STEP_TIMEOUT)
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nshown: {shown}\nprinted:\n{log.read_text(errors='replace')}"
            ) from None

    def ended(self) -> list[str]:
        """What still runs (the walkthrough's own stops must end everything)."""
        return [f"terminal {n}" for n, (process, _, _) in self.running.items() if process.poll() is None]

    def close(self) -> None:
        for process, _, _ in self.running.values():
            if process.poll() is None:
                kill_process_group(process)
            process.wait(10)
        subprocess.run(["farpool", "down"], env=self.env, capture_output=True, timeout=60)


def test_the_walkthrough_has_its_steps() -> None:
    parsed = steps()
    commands = [step.command.split("  #")[0].strip() for step in parsed if step.command]
    assert commands[0] == "make demo" and "farpool up" in commands and "python squares.py" in commands
    assert any(step.stays_running and "celery -A tasks worker" in (step.command or "") for step in parsed)
    assert any(step.interrupt for step in parsed) and "farpool down" in commands


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_walkthrough_prints_what_the_readme_shows(tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    try:
        for step in steps():
            reader.run(step)
        poll(lambda: not reader.ended(), "every process the walkthrough started to end", STEP_TIMEOUT)
        assert not (Path(reader.env["HOME"]) / "squares" / ".farpool").exists()
    finally:
        reader.close()
