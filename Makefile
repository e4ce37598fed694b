# `make run` and `make test` work on a fresh machine: each sets up .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE_DIR ?= .dataset-worker
HOST ?= 127.0.0.1
PORT ?= 9090
export DATASET_WORKER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run test lint typecheck pytest bench system-deps clean

$(STAMP): pyproject.toml setup.py src/dataset_worker/content/_commp.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dataset-worker --state-dir $(STATE_DIR) demo --host $(HOST) --port $(PORT)

# Chromium comes from Debian's package (no browser download); installed only when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the page tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck pytest

# Benchmarks are not tests: each prints ratios against a baseline measured in the same run.
bench: $(STAMP)
	for b in commp car pack scan pack_memory api; do $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info src/dataset_worker/content/*.so
