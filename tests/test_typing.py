"""Pool's calls are typed: mypy infers what they return from a typed function or task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

USER_CODE = """\
from producer import Pool, run
from tasks.examples import square


def cube(x: int) -> int:
    return x ** 3


def shout(word: str) -> str:
    return word.upper()


def main(pool: Pool) -> None:
    reveal_type(pool.map(cube, [1, 2]))
    reveal_type(pool.map(square, [1.0]))
    reveal_type(pool.map("tasks.examples.square", [1]))
    reveal_type(pool.starmap(cube, [(1,)]))
    reveal_type(pool.apply(cube, (2,)))
    reveal_type(pool.apply_async(shout, ("a",)).get())
    reveal_type(pool.map_async(cube, [1]).get())
    reveal_type(pool.imap(shout, ["a"]))
    reveal_type(pool.imap_unordered(cube, [1]))
    reveal_type(pool.map(run, [["echo", "hi"]]))
    pool.map(shout, [1, 2])
"""

EXPECTED = [
    'Revealed type is "list[int]"',
    'Revealed type is "list[float]"',
    'Revealed type is "list[Any]"',
    'Revealed type is "list[int]"',
    'Revealed type is "int"',
    'Revealed type is "str"',
    'Revealed type is "list[int]"',
    'Revealed type is "producer.imap.IMapIterator[str]"',
    'Revealed type is "producer.imap.IMapIterator[int]"',
    'Revealed type is "list[tasks.completed.CompletedProgram]"',
    'Argument 1 to "map" of "Pool" has incompatible type "Callable[[str], str]"; '
    'expected "Callable[[int], str]"',
]


def test_mypy_infers_results_from_the_function_and_flags_a_wrong_item_type(tmp_path: Path) -> None:
    script = tmp_path / "user_code.py"
    script.write_text(USER_CODE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-pretty",
            str(script),
        ],
        cwd=tmp_path,
        env={"MYPYPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = [
        line.split(": ", 2)[-1].split("  [")[0] for line in done.stdout.splitlines() if "user_code.py" in line
    ]
    assert found == EXPECTED, done.stdout
