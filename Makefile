# trainkit: `make help` lists the targets. Every target installs into .venv first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= configs/classification/digits.yaml
PYTEST_ARGS ?=
# Test processes: most tests are a single-threaded Python process, so 2 workers use both cores of a 2-core machine.
# Tests that start a SLURM cluster share the group `cluster` and run one at a time (tests/conftest.py says why).
TEST_WORKERS ?= 2
# --durations=25: every run (CI's included) ends with its 25 slowest tests, so a test that grows shows up, and
# (tests/conftest.py) with the suite's CPU seconds and its 25 costliest tests: on a busy machine, the fair measure.
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

.DEFAULT_GOAL := help
.PHONY: help install fit test test-fast lint format bench bench-smoke clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install trainkit with its dev tools (skipped when up to date)

fit: install ## train the default experiment (digits, resnet18) and test its best checkpoint
	$(BIN)/trainkit fit --config $(CONFIG)

test: install ## run the whole test suite (slow tests included, as in CI)
	$(PYTEST) $(PYTEST_ARGS)

test-fast: install ## run the tests not marked slow
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

lint: install ## ruff checks
	$(BIN)/ruff check trainkit tests benchmarks

format: install ## ruff autofix and format
	$(BIN)/ruff check --fix trainkit tests benchmarks

bench: install ## full benchmark suite: overhead vs a hand-written loop, start-up, int8 export, CUDA table
	$(BIN)/python -m benchmarks

bench-smoke: install ## a seconds-long run of every benchmark, as CI runs it
	$(BIN)/python -m benchmarks --smoke

clean: ## remove runs and caches (keeps .venv)
	rm -rf runs lightning_logs .pytest_cache .ruff_cache
