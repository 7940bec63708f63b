# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := .shardwatch/demo

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shardwatch demo --out $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks flows
	$(BIN)/ruff format --check src

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/scan_vs_duckdb.py --rows 1000000

clean:
	rm -rf $(VENV) .shardwatch .pytest_cache .mypy_cache .ruff_cache
