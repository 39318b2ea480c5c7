# One task runner. A newcomer needs two targets: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
STAMP := $(VENV)/.installed

.PHONY: setup services run cluster test bench soak fuzz check lint format typecheck proto proto-check buf-lint buf-breaking pytest clean

setup: $(STAMP)

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The client distribution first on the line: the server's requirement on it is met here.
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev]'
	touch $(STAMP)

$(BUF):
	mkdir -p .tools
	# --ignore-scripts: the binary ships in a platform sub-package, nothing to download.
	npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix .tools \
		@bufbuild/buf@$(BUF_VERSION)

## Run the gateway with the simulated platform and the embedded SQLite store.
run: setup
	$(BIN)/essc-gateway run --dev

## A local cluster: 2 replicas on PostgreSQL behind nginx, with the simulated platform.
cluster: setup services
	$(BIN)/essc-gateway cluster

## Everything CI checks: generated code, proto lint and compatibility, ruff, mypy, the tests.
test: setup services proto-check buf-lint buf-breaking lint typecheck pytest

## Local services the tests use (PostgreSQL), started if they are not running.
services:
	scripts/ensure-services.sh

pytest: setup services
	$(BIN)/pytest

## The benchmark (not a test): echo baseline vs the gateway per RPC, the targets, a JSON
## report in bench/results.json compared with the reference result bench/reference.json.
bench: setup
	$(BIN)/essc-gateway --log-level WARNING bench --output bench/results.json \
		--compare bench/reference.json

## Ten minutes of mixed load on one gateway: its memory, open files and asyncio tasks after
## the first minute and at the end (bench/soak.json); fails if they grew.
soak: setup
	$(BIN)/essc-gateway --log-level WARNING soak --output bench/soak.json

## Long fuzz run: random and mutated bodies for every GatewayService method (FUZZ_COUNT inputs).
FUZZ_COUNT ?= 100000
fuzz: setup
	$(BIN)/essc-gateway --log-level WARNING fuzz --count $(FUZZ_COUNT)

proto: setup
	$(BIN)/python scripts/gen_protos.py

proto-check: setup
	$(BIN)/python scripts/gen_protos.py --check

buf-lint: $(BUF)
	cd protos && ../$(BUF) lint

## The bank-facing contract against its last release (docs/compatibility.md). The platform's
## protos are the simulated national platform's, not ours to keep compatible.
CONTRACT_RELEASE := releases/essc-gateway-0.1.0.binpb
buf-breaking: $(BUF)
	cd protos && ../$(BUF) breaking --against $(CONTRACT_RELEASE) --exclude-path essc/platform

lint: setup
	$(BIN)/ruff check --no-cache src clients/python/src tests scripts
	$(BIN)/ruff format --no-cache --check src clients/python/src tests scripts

format: setup
	$(BIN)/ruff format src clients/python/src tests scripts
	$(BIN)/ruff check --fix src clients/python/src tests scripts

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
