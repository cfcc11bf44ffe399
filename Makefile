# emgd developer entry points. `make run` and `make test` work on a fresh machine:
# both create or update the local virtual environment first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run monitor test lint layers typecheck pytest clean venv install model

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train,lsl]'
	touch $(STAMP)

## The daemon on the simulated board, no hardware, no files: the real ADS1299 driver in
## its acquisition process, the shipped model, safety, the real PCA9685 path and a
## simulated hand. Watch it with `.venv/bin/emgd status --watch` in another terminal.
run: $(STAMP)
	$(BIN)/emgd run --simulate

## The acquisition and servo path without a model, with a live view in this terminal.
monitor: $(STAMP)
	$(BIN)/emgd monitor --simulate

## Everything CI checks: lint, the package's import layers, types, tests.
test: lint layers typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check daemon tests
	$(BIN)/ruff format --check daemon tests

## Imports go one way through the layers declared in pyproject.toml ([tool.importlinter]).
layers: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

## On a Raspberry Pi, as root: the service, its user, folders, udev rules and config.
install:
	bash systemd/install.sh

## Reproduce the shipped default model (synthetic wearer, 1 kHz x 8 channels): ~15 minutes.
model: $(STAMP)
	$(BIN)/emgd train --dataset synthetic --participant seed0 --synthetic-recordings 12 \
		--seed 0 --minutes 45 --out models/default.onnx
