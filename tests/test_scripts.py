"""A user's script as it really looks: the seed's, verbatim but for its import, from any folder;
a task defined in the script; a project with its own tasks.py or config.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fresh_machine_env

SEED = Path(__file__).parent.parent / "producer" / "demo" / "pool_multiprocessing.py"
SEED_OUTPUT = (
    "Dataset: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]\n"
    "Result: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196]\n"
)
SCRIPT_TIMEOUT = 120


def user_env(tmp_path: Path) -> dict[str, str]:
    """Nothing set but a free broker port (the suite never uses a Redis it did not start)."""
    env = fresh_machine_env(str(tmp_path / "data"), concurrency=2)
    env.pop("PYTHONPATH", None)
    return env


def run_script(script: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )


def test_the_seed_script_differs_from_the_seed_only_in_its_import() -> None:
    lines = SEED.read_text().splitlines()
    assert lines[0] == "from producer import Pool"
    assert "def square(x):" in lines and "if __name__ == '__main__':" in lines
    assert "        result = pool.map(square, dataset, chunksize)" in lines


@pytest.mark.integration
def test_the_seed_script_prints_its_two_lines_from_its_folder_and_from_another(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    script = Path(shutil.copy(SEED, folder / "pool_multiprocessing.py"))
    # the folder it is run from has a tasks.py and a config.py of its own: they are not on the path
    (elsewhere / "tasks.py").write_text("raise SystemExit('the wrong tasks module')\n")
    (elsewhere / "config.py").write_text("raise SystemExit('the wrong config module')\n")
    env = user_env(tmp_path)
    for cwd, path in ((folder, Path("pool_multiprocessing.py")), (elsewhere, script)):
        done = run_script(path, cwd, env)
        assert (done.returncode, done.stdout) == (0, SEED_OUTPUT), done.stderr


@pytest.mark.integration
def test_a_script_leaves_the_folder_it_runs_from_empty(tmp_path: Path) -> None:
    """farpool's data (the local cluster's log, its records, the broker's files) goes to the
    user's data folder, not to a `.farpool/` where the script runs."""
    folder, empty, xdg = tmp_path / "project", tmp_path / "empty", tmp_path / "xdg"
    folder.mkdir()
    empty.mkdir()
    script = Path(shutil.copy(SEED, folder / "pool_multiprocessing.py"))
    env = {**user_env(tmp_path), "XDG_DATA_HOME": str(xdg)}
    del env["FARPOOL_DATA_DIR"]
    done = run_script(script, empty, env)
    assert (done.returncode, done.stdout) == (0, SEED_OUTPUT), done.stderr
    assert list(empty.iterdir()) == []
    assert (xdg / "farpool" / "local-cluster.log").exists()


TASK_SCRIPT = """\
from celery import shared_task

from producer import Pool
from tasks import app


@app.task
def square(x):
    return x * x


@shared_task
def cube(x):
    return x ** 3


if __name__ == "__main__":
    with Pool(2) as pool:
        print(pool.map(square, range(5)), pool.map(cube, range(3)), pool.apply(square, (9,)))
"""

HELPER_SCRIPT = """\
from helpers import halve
from producer import Pool

if __name__ == "__main__":
    with Pool(2) as pool:
        print(pool.map(halve, [2, 4]))
"""


@pytest.mark.integration
def test_unnamed_tasks_and_helper_modules_of_a_script_run_on_its_local_cluster(tmp_path: Path) -> None:
    (tmp_path / "with_tasks.py").write_text(TASK_SCRIPT)
    (tmp_path / "with_helpers.py").write_text(HELPER_SCRIPT)
    (tmp_path / "helpers.py").write_text("def halve(x):\n    return x // 2\n")
    env = user_env(tmp_path)
    done = run_script(tmp_path / "with_tasks.py", tmp_path, env)
    assert (done.returncode, done.stdout) == (0, "[0, 1, 4, 9, 16] [0, 1, 8] 81\n"), done.stderr
    done = run_script(tmp_path / "with_helpers.py", tmp_path.parent, env)
    assert (done.returncode, done.stdout) == (0, "[1, 2]\n"), done.stderr


@pytest.mark.integration
def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text("from producer import Pool\n\ndef f(x):\n    return x\n\nPool(1).map(f, [1])\n")
    done = run_script(script, tmp_path, user_env(tmp_path))
    assert done.returncode == 1
    assert "put its main code under `if __name__ == '__main__':`" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("package", ["tasks", "config"])
def test_a_projects_own_tasks_or_config_module_is_named_with_the_fix(tmp_path: Path, package: str) -> None:
    script = Path(shutil.copy(SEED, tmp_path / "pool_multiprocessing.py"))
    own = tmp_path / f"{package}.py"
    own.write_text("SETTING = 1\n")
    done = run_script(script, tmp_path, user_env(tmp_path))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and done.stdout == ""
    assert last == (
        f"ImportError: {own} takes the place of farpool's `{package}` package (one module per name "
        f"in Python): rename it, for example to my_{package}.py, and its imports"
    )


def test_a_worker_started_beside_a_config_py_names_it(tmp_path: Path) -> None:
    own = tmp_path / "config.py"
    own.write_text("SETTING = 1\n")
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker"]
    done = subprocess.run(
        command, cwd=tmp_path, env=user_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"{own} takes the place of farpool's `config` package" in done.stderr


@pytest.mark.integration
def test_farpool_demo_runs_the_seed_script_from_a_folder_with_its_own_tasks_py(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("raise SystemExit('the wrong tasks module')\n")
    farpool = Path(sys.executable).parent / "farpool"
    done = subprocess.run(
        [str(farpool), "demo"],
        cwd=tmp_path,
        env=user_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert (done.returncode, done.stdout) == (0, SEED_OUTPUT), done.stderr


@pytest.mark.integration
def test_a_script_run_as_a_module_of_a_package(tmp_path: Path) -> None:
    package = tmp_path / "jobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "squares.py").write_text(
        "from producer import Pool\n\n\ndef square(x):\n    return x * x\n\n\n"
        "if __name__ == '__main__':\n    with Pool(2) as pool:\n        print(pool.map(square, [3, 4]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "jobs.squares"],
        cwd=tmp_path,
        env=user_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    assert (done.returncode, done.stdout) == (0, "[9, 16]\n"), done.stderr
