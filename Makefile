# CIM — make help lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: help install install-dev run test test-fast lint bench translations clean audit

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Three install sets (docs/operations.md, "Runtime and development installs"): requirements.lock
# is the runtime (the container image's); requirements-run.lock adds the local SMTP sink `make run`
# starts; requirements-dev.lock adds the test, lint and benchmark tools.
$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	@touch $(STAMP)

$(RUN_STAMP): $(STAMP) requirements-run.lock
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-run.lock
	@touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	@touch $(DEV_STAMP)

install: $(STAMP) translations  ## Create .venv and install the runtime's pinned dependencies (no test tools)

install-dev: $(DEV_STAMP) translations  ## install, plus the test, lint and benchmark tools

translations: $(STAMP)  ## Compile the Swedish (and English) message catalogues
	$(BIN)/pybabel -q compile -d translations

run: install $(RUN_STAMP)  ## Start the whole system on the embedded default (Ctrl-C stops it)
	@bash scripts/run.sh

test: install-dev  ## Start the servers the tests need, run the whole suite, stop them
	@bash scripts/test.sh

# The local lane: no PostgreSQL, Redis or SMTP server, no real processes (tests/README.md).
test-fast: install-dev  ## Unit and contract tests only, no servers: the lane for local work
	$(BIN)/pytest -q -p no:cacheprovider tests/unit tests/contracts -m "not postgres and not redis and not slow and not thorough"

lint: install-dev  ## ruff, import contracts and mypy over every package
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy shared intake_service assessment_service workers

bench: install-dev  ## Run the benchmarks; results go to bench/RESULTS.md by hand
	@bash bench/run.sh

# Audit tools live in their own venv under var/ (not in the app's dependencies). Bandit skips
# B608 (SQL built from the driver's placeholder marker only) and B310 (the feed URL is operator
# configuration); written exceptions: docs/security.md, "Security measures". The dependency
# audit (scripts/audit_deps.py) gives every pin of requirements.lock and requirements-dev.lock a verdict -- ok, VULNERABLE
# or "not checked" -- with runtime dependencies (the closure of pyproject's dependencies) apart
# from dev/test ones; it fails on any vulnerability and on any runtime pin it could not check (no
# answer is never a silent "clean"); a dev/test pin it could not check (aiosmtpd) is listed only.
AUDIT_VENV := var/audit-venv
audit: install  ## bandit (medium+ findings) and a verdict on every pinned dependency (pip-audit)
	@test -x $(AUDIT_VENV)/bin/python || $(PY) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/pip install -q --disable-pip-version-check pip-audit==2.10.1 bandit==1.9.4
	$(AUDIT_VENV)/bin/bandit -q -r shared intake_service assessment_service workers --severity-level medium --skip B608,B310
	$(BIN)/python scripts/audit_deps.py --pip-audit $(AUDIT_VENV)/bin/pip-audit

clean:  ## Remove var/ (all local data) and caches
	rm -rf var .pytest_cache .ruff_cache .mypy_cache .hypothesis
