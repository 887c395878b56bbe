# Raiox AI — `make run` (install + migrate + demo catalog + serve) and `make test` (whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# The production lock (deploy.sh installs it, hash-checked): made for Python 3.11 on x86_64 Linux (glibc 2.35 and
# up: Debian 12, Ubuntu 24.04), and checked to have wheels for the droplets' Python (Ubuntu 24.04: 3.12).
# Keep LOCK_PYTHON and LOCK_WHEEL_PYTHONS in step with raiox_python_versions (deploy/roles/raiox/defaults).
LOCK := requirements/prod.lock
# The build backend deploy.sh builds the release with (pyproject.toml's build-system.requires), pinned and hashed too
BUILD_LOCK := requirements/build.lock
LOCK_PYTHON := 3.11
LOCK_WHEEL_PYTHONS := 3.11 3.12
LOCK_PLATFORM := x86_64-manylinux_2_35
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.9
LOCK_ARGS ?=

.PHONY: run test install install-test system-deps lint bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the locked versions first (what production runs), then the project and, for tests, its extras
install: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet -e ".[test,ops]"

# Regenerate $(LOCK) from pyproject.toml's base dependencies (no extras: no torch), keeping every pin its range
# still admits, and $(BUILD_LOCK) from its build-system.requires; `make lock LOCK_ARGS=--upgrade` takes the newest of
# everything, `LOCK_ARGS="--upgrade-package fastapi"` one package. Review the diff and commit it with the
# pyproject.toml change (docs/operations.md).
$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==$(UV_VERSION)

lock: $(LOCK_VENV)/bin/uv
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes --python-version $(LOCK_PYTHON) \
		--python-platform $(LOCK_PLATFORM) $(LOCK_ARGS) -o $(LOCK)
	$(LOCK_VENV)/bin/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(LOCK_VENV)/bin/uv pip compile - --quiet --generate-hashes --python-version $(LOCK_PYTHON) \
		--python-platform $(LOCK_PLATFORM) $(LOCK_ARGS) -o $(BUILD_LOCK)
	for lock in $(LOCK) $(BUILD_LOCK); do for py in $(LOCK_WHEEL_PYTHONS); do \
		$(LOCK_VENV)/bin/uv pip compile $$lock --quiet --no-deps --only-binary :all: --python-version $$py \
			--python-platform $(LOCK_PLATFORM) -o /dev/null || { echo "$$lock: a pin has no wheel for Python $$py"; exit 1; }; \
	done; done

system-deps:
	bash scripts/system-deps.sh

run: install
	$(BIN)/raiox db upgrade
	$(BIN)/raiox catalog demo --if-empty
	$(BIN)/raiox catalog reindex  # a catalog loaded with an earlier default model gets the current one's vectors
	$(BIN)/raiox serve --host $(HOST) --port $(PORT)

test: system-deps install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest --durations=25 $(PYTEST_ARGS)  # the slowest tests listed: the suite must stay under 15 min on 2 cores

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) $(LOCK_VENV) var build *.egg-info
