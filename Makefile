# The single entry point for contributors and CI.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint up bench stress browser clean

$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/farpool demo

up: $(VENV)/.runtime
	$(VENV)/bin/farpool up --flower

test: $(VENV)/.dev
	$(PY) -m ruff check tasks producer config tests benchmarks
	$(PY) -m ruff format --check tasks producer config tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest

$(VENV)/.bench: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.bench
	$(PY) -m benchmarks

stress: $(VENV)/.dev
	$(PY) -m benchmarks.stress

browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)/.dev
	$(PY) -m ruff check tasks producer config tests benchmarks
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .farpool
