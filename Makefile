# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := .shardwatch/demo

.PHONY: demo test lint typecheck imports unit browser bench clean

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
	$(BIN)/mypy --config-file tests/mypy.ini tests --exclude '^tests/reliability/'
	$(BIN)/mypy --config-file tests/mypy.ini tests/reliability

# The Data Docs browser test drives the system Chromium through chromedriver: install both
# (Debian/Ubuntu, as root or through passwordless sudo) when they are missing. A failed
# install only warns: the test then skips, or fails when CI is set.
BROWSER_PKGS := chromium chromium-driver
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	$(BROWSER_PKGS) >/dev/null

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "warning: no apt-get; install Chromium and chromedriver for the browser test"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then as_root=""; else as_root="sudo -n"; fi; \
	  echo "installing $(BROWSER_PKGS) for the Data Docs browser test"; \
	  $$as_root sh -c '$(APT_INSTALL) || { apt-get update -q >/dev/null && $(APT_INSTALL); }' \
	    || echo "warning: cannot install $(BROWSER_PKGS); the browser test fails in CI"; \
	fi

# The suite runs on every core (pytest-xdist; `--dist loadfile`: a module's tests share one
# worker and its module fixtures; modules in tests/support/scheduling.py's order), then the `exclusive` tests, which stop or restart the
# shared PostgreSQL, run alone. One worker more than cores: many tests wait on processes and
# servers. PYTEST_WORKERS=1 runs the first part in one process.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
unit: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	  -m "not exclusive"
	SHARDWATCH_FIGURES_APPEND=1 $(BIN)/python -m pytest -q -m exclusive tests/reliability

# The import contract in pyproject.toml ([tool.importlinter]): layer order, no cycles.
imports: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck imports unit

bench: $(STAMP)
	$(BIN)/python benchmarks/scan_vs_duckdb.py --rows 1000000

clean:
	rm -rf $(VENV) .shardwatch .pytest_cache .mypy_cache .ruff_cache
