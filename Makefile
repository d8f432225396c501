# The single entry point for contributors and CI. `make` alone lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SOURCES := tasks producer config tests benchmarks
# A plain editable install: pyproject's package-dir makes it a .pth file naming this folder
# (no import hook, which mypy can follow), and setuptools prints no warning for it.

.DEFAULT_GOAL := help
.PHONY: help demo test lint docs format up bench stress failover browser clean

help: ## List the targets.
	@awk -F ':.*## ' '/^[a-z]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.runtime: pyproject.toml
	@echo "installing farpool into $(VENV) (once)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime
	@echo "installing the dev tools into $(VENV) (once)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(VENV)/.runtime ## Run the seed's script on a real worker (starts what it needs, stops it after).
	@$(VENV)/bin/farpool demo

up: $(VENV)/.runtime ## Run a local cluster with Flower in the foreground (Ctrl-C stops it).
	$(VENV)/bin/farpool up --flower

test: lint docs ## The checks of `make lint`, the docs build, then the test suite.
	$(PY) -m pytest

lint: $(VENV)/.dev ## ruff, ruff format --check and mypy: what `make test` runs before pytest.
	$(PY) -m ruff check $(SOURCES)
	$(PY) -m ruff format --check $(SOURCES)
	$(PY) -m mypy

docs: $(VENV)/.dev ## Build the documentation site into site/, strict: a broken link or API name fails.
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

format: $(VENV)/.dev ## Fix what ruff can fix and format the code.
	$(PY) -m ruff check --fix $(SOURCES)
	$(PY) -m ruff format $(SOURCES)

$(VENV)/.bench: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.bench ## Throughput, latency and speed-up figures, beside their goals.
	$(PY) -m benchmarks
	$(PY) -m benchmarks.consume

stress: $(VENV)/.dev ## A kill battle (workers, children, the broker), farpool's consume path then kombu's.
	$(PY) -m benchmarks.stress --paths farpool,kombu --seconds 60 --chunksize 1 --items 40 --broker-kills 0.25

failover: $(VENV)/.dev ## (root) Faults across hosts timed, then 10 Sentinel failovers: what is lost.
	$(PY) -m benchmarks.recovery
	$(PY) -m benchmarks.failover

browser: ## Install Debian's Chromium, for the Flower page test.
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean: ## Remove the virtualenv, build metadata, the docs site, caches and an old .farpool folder.
	rm -rf $(VENV) .farpool *.egg-info build site .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "kept: farpool's data (logs, the bundled broker's files) in $${FARPOOL_DATA_DIR:-$${XDG_DATA_HOME:-$$HOME/.local/share}/farpool}"
