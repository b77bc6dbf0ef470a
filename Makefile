# tornado-phoenix: every entry point a newcomer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
HOST_PY   ?= python3
HOST      ?=
PORT      ?= 4000
PYTEST_ARGS ?=

.PHONY: help install system-deps run test test-fast lint e2e clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Two markers: $(VENV)/.runtime = the runtime lock + the package (all `make run` needs, well under a minute);
# $(VENV)/.installed = also the dev lock (pytest, ruff, ansible, testinfra...) for tests and deploys.
$(VENV)/.runtime: requirements/runtime.lock pyproject.toml
	@echo "==> creating $(VENV) from requirements/runtime.lock (hash-checked; the server's dependencies only)"
	test -x $(PY) || $(HOST_PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/runtime.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(VENV)/.installed: requirements/dev.lock $(VENV)/.runtime
	@echo "==> adding requirements/dev.lock to $(VENV) (hash-checked: tests, lint, ansible, testinfra)"
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.lock
	$(BIN)/ansible-galaxy collection list community.docker >/dev/null
	@touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	@echo "==> installing the official JS clients from tests/js/package-lock.json"
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(VENV)/.installed tests/js/node_modules/.installed ## create the venv and install the node clients (locked)
	@echo "installed: $(BIN)/tornado-phoenix, tests/js/node_modules"

system-deps: ## apt-install and start what tests need (docker engine, qemu, debootstrap, chromium); no-op when present
	@bash scripts/system-deps.sh

# A venv that already has the dev lock serves `make run` as it is.
RUN_DEPS := $(if $(wildcard $(VENV)/.installed),,$(VENV)/.runtime)

run: $(RUN_DEPS) ## run the server locally on 127.0.0.1:$(PORT) (installs only the runtime lock)
	$(BIN)/tornado-phoenix serve --host 127.0.0.1 --port $(PORT)

test: system-deps install ## run every test (unit, integration, official clients, lint, end-to-end VM deploy)
	$(BIN)/pytest $(PYTEST_ARGS) tests
	@echo "result: all tests passed"

test-fast: install ## every test except the end-to-end VM deploy and the sandbox smoke test (about 4 minutes)
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS) tests
	@echo "result: fast tests passed"

lint: $(VENV)/.installed ## ruff on the python code
	$(BIN)/ruff check server tests bench
	@echo "result: lint clean"

clean: ## remove the venv and node modules
	rm -rf $(VENV) tests/js/node_modules

-include mk/*.mk
