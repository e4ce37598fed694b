# `make run` and `make test` work on a fresh machine: each sets up .venv on first use.
# Needs Python >= 3.11 (`python3`, or PYTHON=...), gcc, OpenSSL headers, Node.js >= 20 with npm
# (the interop harness) and, for the database tests, PostgreSQL.
PYTHON ?= python3
NPM ?= npm
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.installed
STATE_DIR ?= .dataset-worker
HOST ?= 127.0.0.1
PORT ?= 9090
export DATASET_WORKER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run test lint typecheck pytest bench interop system-deps clean

# The venv is made once, by $(PYTHON); it must be 3.11 or newer (pyproject's requires-python).
$(STAMP): pyproject.toml setup.py src/dataset_worker/content/_commp.c
	@if ! test -x $(BIN)/python; then \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    found="$$($(PYTHON) --version 2>/dev/null)" || found="not found"; \
	    echo "error: Python >= 3.11 is needed to create $(VENV), but '$(PYTHON)' is $$found;" \
	      "install one and run e.g. 'make PYTHON=python3.12 ...' (or set PYTHON)" >&2; \
	    exit 1; \
	  fi; \
	  echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dataset-worker --state-dir $(STATE_DIR) demo --host $(HOST) --port $(PORT)

# The JavaScript interop harness (tests/interop), reinstalled only when its lock file changes.
# Without npm the tests that need it skip (fail under DATASET_WORKER_REQUIRE_ALL_TESTS=1).
interop: $(INTEROP_STAMP)

$(INTEROP_STAMP): $(INTEROP)/package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
	  echo "$(NPM) ci --prefix $(INTEROP)"; \
	  $(NPM) ci --prefix $(INTEROP) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "note: $(NPM) not found: install Node.js >= 20 with npm for the interop tests" \
	    "(they skip without it, and fail under DATASET_WORKER_REQUIRE_ALL_TESTS=1)"; \
	fi

# Chromium for the page tests comes from Debian's package (no browser download). It is installed
# only when missing, and only where apt-get exists and we are root; elsewhere we say what to do.
system-deps:
	@if command -v chromium >/dev/null 2>&1; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's chromium for the page tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "note: chromium is missing: install it for the page tests (Debian/Ubuntu:" \
	    "'sudo apt-get install chromium'); they skip without it, and fail under" \
	    "DATASET_WORKER_REQUIRE_ALL_TESTS=1"; \
	fi
	@if [ -x /usr/sbin/sshd ]; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian's openssh-server for the SFTP tests (run privately on loopback)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; \
	else \
	  echo "note: sshd is missing: install openssh-server for the SFTP tests; they skip" \
	    "without it, and fail under DATASET_WORKER_REQUIRE_ALL_TESTS=1"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# One pytest worker per CPU (pytest-xdist): the suite's servers, databases and ports are per test.
PYTEST_WORKERS ?= auto
pytest: $(STAMP) system-deps interop
	$(BIN)/pytest -n $(PYTEST_WORKERS)

test: lint typecheck pytest

# Benchmarks are not tests: each prints ratios against a baseline measured in the same run.
# PYTHONPATH=. lets them drive job bodies with the test helpers in tests/support.
BENCHES ?= commp car pack scan pack_memory api cli prepare serve storage smallfiles claims
bench: $(STAMP) interop
	for b in $(BENCHES); do PYTHONPATH=. $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info src/dataset_worker/content/*.so $(INTEROP)/node_modules
