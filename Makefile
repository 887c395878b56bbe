# Raiox AI — `make run` (install + migrate + demo catalog + serve) and `make test` (whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-test system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,ops]"

system-deps:
	bash scripts/system-deps.sh

run: install
	$(BIN)/raiox db upgrade
	$(BIN)/raiox catalog demo --if-empty
	$(BIN)/raiox catalog reindex  # a catalog loaded with an earlier default model gets the current one's vectors
	$(BIN)/raiox serve --host $(HOST) --port $(PORT)

test: system-deps install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) var build *.egg-info
