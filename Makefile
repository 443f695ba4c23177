# Two commands on a fresh clone: `make run` and `make test`.
# Both bootstrap .venv from nothing with the python3 on PATH (3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit e2e bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cotpay-escrow run $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

e2e: $(STAMP)
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

# 100 orders down every path under sandbox faults, 10 SIGKILLs each of worker, gateway and
# Temporal and 5 order-store outages; prints one JSON document, exit code 1 on a violation
# (docs/reliability.md).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
