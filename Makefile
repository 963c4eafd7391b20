# Two entry points for a fresh machine: `make book` and `make test` (README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline-safe defaults: nothing in the book needs a hub; online readers can unset these.
export HF_HUB_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: venv book test test-fast notebooks clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

## Build the static book from the committed, executed notebooks.
book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "Book written to $(CURDIR)/_build/html/index.html"

## Everything CI checks: unit tests + every notebook re-executed by nbval, then the book build.
test: $(STAMP)
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory book

## Unit tests only (no notebooks), for quick iteration.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests

## Re-execute every chapter in place (after editing one), so the committed outputs are fresh.
notebooks: $(STAMP)
	$(BIN)/python bench/execute_notebooks.py notebooks/*.ipynb

clean:
	rm -rf _build .pytest_cache
