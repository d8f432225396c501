"""The make targets, as a contributor meets them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MAKEFILE = ROOT / "Makefile"


def targets() -> list[str]:
    phony = re.search(r"^\.PHONY: (.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert phony is not None
    return phony.group(1).split()


def make(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("args", [(), ("help",)], ids=["make", "make help"])
def test_make_alone_and_make_help_list_every_target_with_a_line(args: tuple[str, ...]) -> None:
    done = make(*args)
    listed = [line.split()[1] for line in done.stdout.splitlines()]
    assert done.returncode == 0 and sorted(listed) == sorted(targets())
    assert all(len(line.split(None, 2)) == 3 for line in done.stdout.splitlines())


def test_test_runs_exactly_lint_then_the_strict_docs_build_then_pytest() -> None:
    stamps = ["-o", ".venv/.dev", "-o", ".venv/.runtime"]  # taken as made: only the recipes
    lint = make("-n", *stamps, "lint").stdout.splitlines()
    docs = make("-n", *stamps, "docs").stdout.splitlines()
    test = make("-n", *stamps, "test").stdout.splitlines()
    assert test[:-1] == lint + docs and test[-1].endswith("-m pytest")
    assert any("ruff format --check" in line for line in lint)
    assert len(docs) == 1 and "-m mkdocs build --strict" in docs[0]


def test_the_docs_build_needs_only_the_dev_extras() -> None:
    """`make docs` on a fresh clone: what mkdocs.yml uses is installed by `pip install -e '.[dev]'`."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev = " ".join(extras["dev"])
    config = (ROOT / "mkdocs.yml").read_text()
    assert "name: material" in config and "- mkdocstrings:" in config and "strict: true" in config
    for package in ("mkdocs>=", "mkdocs-material>=", "mkdocstrings[python]>="):
        assert package in dev, package


def test_clean_removes_build_metadata_and_caches(tmp_path: Path) -> None:
    shutil.copy(MAKEFILE, tmp_path / "Makefile")
    made = [".venv", ".farpool", "farpool.egg-info", "site", ".mypy_cache", ".ruff_cache", "pkg/__pycache__"]
    for name in made:
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "pkg" / "kept.py").write_text("")
    done = make("clean", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [name for name in made if (tmp_path / name).exists()] == []
    assert (tmp_path / "pkg" / "kept.py").exists()


def test_the_readme_names_every_target() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [target for target in targets() if f"make {target}" not in readme] == []


def install_commands() -> list[str]:
    return re.findall(r"pip install .* -e .*$", MAKEFILE.read_text(), re.MULTILINE)


@pytest.mark.integration
def test_the_install_prints_no_warning_and_puts_this_folder_on_the_path(tmp_path: Path) -> None:
    """`make demo` and `make test` install as below: setuptools warns about nothing, and the
    project goes on the path through a .pth file naming this folder, which mypy follows."""
    assert len(install_commands()) == 3  # runtime, dev, bench
    assert "editable_mode" not in MAKEFILE.read_text()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    command = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stderr
    pth = [path.read_text().strip() for path in venv.glob("lib/python*/site-packages/__editable__*.pth")]
    assert [Path(line).resolve() for line in pth] == [ROOT.resolve()]


def test_every_package_folder_is_installed() -> None:
    """pyproject lists its packages: a folder left out is missing from a wheel (the Docker image)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(folder.relative_to(root).parts)
        for top in ("tasks", "producer", "config")
        for folder in [root / top, *(root / top).rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py"))
    }
    assert folders == listed


@pytest.mark.parametrize(
    ("page", "line"),
    [
        ("cli.md", ""),
        ("cli.md", "[a page that is not there](nowhere.md)"),
        ("cli.md", "[a heading that is not there](usage.md#no-such-heading)"),
        ("api.md", "::: producer.NoSuchName"),
    ],
    ids=["intact", "missing page", "missing anchor", "missing API name"],
)
def test_make_docs_fails_on_a_broken_link_or_api_name(tmp_path: Path, page: str, line: str) -> None:
    """`make docs`'s own command, on a copy of the docs with one thing broken (mkdocs' --quiet,
    for one, would let the warnings of --strict pass)."""
    recipe = make("-n", "-o", ".venv/.dev", "-o", ".venv/.runtime", "docs").stdout.strip()
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / page).open("a") as text:
        text.write(f"\n{line}\n")
    config = (ROOT / "mkdocs.yml").read_text().replace('["."]', f'["{ROOT}"]')
    (tmp_path / "mkdocs.yml").write_text(config)
    command = f"{recipe} --config-file {tmp_path / 'mkdocs.yml'} --site-dir {tmp_path / 'site'}"
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    if not line:
        assert done.returncode == 0, output[-2000:]
        return
    assert done.returncode != 0, output[-2000:]
    assert "NoSuchName" in output or "Aborted with 1 warnings in strict mode" in output, output
