# keytrail — every target sets up .venv/ first; only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.keytrail-installed
PIP := $(BIN)/python -m pip --disable-pip-version-check -qq
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: setup demo test fuzz lint format bench clean

setup: $(STAMP)

# One short line per step; pip at -qq shows errors but not its per-package warnings, and a
# failing step stops make with pip's error and a non-zero exit.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "keytrail needs Python 3.11 or newer")'
	@test -x $(BIN)/python || { echo "setup: creating $(VENV)/"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: updating pip"
	@$(PIP) install --upgrade pip
	@echo "setup: installing pinned dependencies (a few minutes on first run)"
	@$(PIP) install -r requirements.lock
	@echo "setup: installing keytrail"
	@$(PIP) install --no-deps -e .
	@touch $(STAMP)
	@echo "setup: done; $(VENV)/ is ready"

demo: setup
	$(BIN)/keytrail demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The property-based tests (marked fuzz) with thousands of fresh examples each: minutes, not
# seconds. make test runs the same tests with a small, fixed set of examples.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m fuzz -n 2 --dist loadgroup

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf demo-lake .bench .pytest_cache .mypy_cache .ruff_cache .hypothesis
