# CIM — make help lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test test-fast lint bench translations clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	@touch $(STAMP)

install: $(STAMP) translations  ## Create .venv and install the pinned dependencies

translations: $(STAMP)  ## Compile the Swedish (and English) message catalogues
	$(BIN)/pybabel -q compile -d translations

run: install  ## Start the whole system on the embedded default (Ctrl-C stops it)
	@bash scripts/run.sh

test: install  ## Start the servers the tests need, run the whole suite, stop them
	@bash scripts/test.sh

test-fast: install  ## Unit and contract tests only (no servers)
	$(BIN)/pytest -q tests/unit tests/contracts -m "not postgres and not redis and not slow"

lint: install  ## ruff, import contracts and mypy
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy shared intake_service

bench: install  ## Run the benchmarks; results go to bench/RESULTS.md by hand
	@bash bench/run.sh

clean:  ## Remove var/ (all local data) and caches
	rm -rf var .pytest_cache .ruff_cache .mypy_cache .hypothesis
