# Everything installs from a bare machine: a venv in .venv, pinned by requirements.lock.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHROMIUM := $(shell command -v chromium 2>/dev/null)
INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb) $(shell command -v initdb 2>/dev/null))

.PHONY: install browser postgres-server demo test test-fast lint serve bench cluster-test clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium drives the consent-page test (Playwright's own browser download cannot work here).
browser:
ifeq ($(CHROMIUM),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif

demo: install
	$(BIN)/python -m deployments.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install browser lint
	$(BIN)/pytest

# The tests that need no Prefect server (marker unit, set by tests/conftest.py), on both cores.
test-fast: install
	$(BIN)/pytest -q -m unit -n 2

serve: install
	$(BIN)/python -m deployments.serve $(ARGS)

bench: install
	$(BIN)/python -m bench.run

# The cluster check restarts a PostgreSQL instance of its own: it needs the server binaries.
postgres-server:
ifeq ($(INITDB),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
endif

# A Prefect server on PostgreSQL, two process workers, prefect.yaml deployments (README: Scale-out).
cluster-test: install postgres-server
	$(BIN)/python -m deployments.cluster

clean:
	rm -rf $(VENV) data .pytest_cache
