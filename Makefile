# Two entry points for a fresh machine: `make book` and `make test` (README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline-safe defaults: nothing in the book needs a hub; online readers can unset these.
export HF_HUB_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: venv book test test-fast site-check chromium notebooks clean explorer-grid explorer-grid-small explorer-vendor

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

## Everything CI checks: unit tests + every notebook re-executed by nbval, the book build, and the browser check.
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest  # 2 xdist workers on 2 cores: one thread each
	$(MAKE) --no-print-directory book
	$(MAKE) --no-print-directory site-check

## Open every built page in headless Chromium (errors, links, widgets; screenshots in _build/screenshots).
site-check: $(STAMP) chromium
	$(BIN)/python -m pytest -p no:xdist -o addopts="-ra -p no:cacheprovider" tests/site

## Debian's Chromium for the browser check (installed when missing and we are root, as on CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "The browser check needs Chromium: install it (Debian/Ubuntu: apt-get install chromium)."; exit 1; }

## Precompute the static explorer of chapter 2 (book/_static/explorer/grid.json): about an hour on one CPU thread.
explorer-grid: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python scripts/explorer_grid.py

## The small development grid of the static explorer (a few minutes).
explorer-grid-small: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python scripts/explorer_grid.py --small

## Re-vendor the static explorer's chart libraries (Vega, Vega-Lite, vega-embed) from npm, pinned.
explorer-vendor:
	sh scripts/vendor_explorer_js.sh

## Unit tests only (no notebooks), for quick iteration.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests

## Re-execute every chapter in place (after editing one), so the committed outputs are fresh.
notebooks: $(STAMP)
	$(BIN)/python bench/execute_notebooks.py notebooks/*.ipynb

clean:
	rm -rf _build .pytest_cache
