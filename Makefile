# Every target creates and uses .venv by itself: on a fresh Debian machine with Python 3.11,
# `make demo` and `make test` do all the set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: demo test check lint bench chaos clean browser screenshot postgres

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (Debian ships venv separately)"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; \
	  else echo "error: $(PYTHON) has no venv module; run: sudo apt-get install python3-venv" >&2; exit 1; fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/b24-bridge demo

# The status page's test drives a real browser: Debian's chromium, installed when missing (as root).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (the status page is tested in a headless browser)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "error: chromium is missing; run: sudo apt-get install chromium" >&2; exit 1; fi; \
	fi

# The journal's contract suite also runs on a real PostgreSQL that the tests start themselves (initdb + pg_ctl in
# a temporary directory, no system service): Debian's server, installed when missing (as root).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing postgresql (the journal is tested on a real PostgreSQL)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  else echo "error: the PostgreSQL server is missing; run: sudo apt-get install postgresql" >&2; exit 1; fi; \
	fi

# The default test run: everything but the slow suites, with 100 % branch coverage of the pure core enforced.
test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" \
	  --cov=bridge/domain --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100 $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench
	$(BIN)/ruff format --check bridge tests bench
	$(BIN)/mypy

check: lint test

bench: $(STAMP)
	$(BIN)/python -m bench

# The slow suites: the full chaos run and the long tests elsewhere (a real 60 s outage, ...). The full chaos
# run's figures go to bench/chaos-figures.json, which `python -m bench --write` puts into BENCHMARKS.md.
chaos: $(STAMP)
	CHAOS_FIGURES=bench/chaos-figures.json $(BIN)/python -m pytest -q -p no:cacheprovider -m slow tests

# docs/status-page.png, the README's picture of /status, taken by the browser test while its call talks.
screenshot: $(STAMP) browser
	STATUS_SCREENSHOT=docs/status-page.png $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/integration/test_status_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
