# emgd developer entry points. `make run` and `make test` work on a fresh machine:
# both create or update the local virtual environment first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest clean venv install model

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $(STAMP)

## The simulated board, no hardware, no files: EMG through the real ADS1299 driver and
## servo pulses through the real PCA9685 path, with a live view. (Becomes the daemon,
## `emgd run --simulate`, when the daemon lands.)
run: $(STAMP)
	$(BIN)/emgd monitor --simulate

## Everything CI checks: lint, types, tests.
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check daemon tests
	$(BIN)/ruff format --check daemon tests

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

## On a Raspberry Pi, as root: the service, its user, folders, udev rules and config.
install:
	bash systemd/install.sh

## Reproduce the shipped default model (synthetic wearer, 1 kHz x 8 channels): ~8 minutes.
model: $(STAMP)
	$(BIN)/emgd train --dataset synthetic --participant seed0 --recordings 12 --minutes 6 \
		--seed 0 --out models/default.onnx
