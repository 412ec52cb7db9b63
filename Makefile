# retrain: `make demo` runs the whole loop on this machine; `make test` runs the checks.
# Both build their own virtual environment from scratch on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-run
CONSTRAINTS := constraints.txt

.DEFAULT_GOAL := help

.PHONY: help venv demo test lint typecheck unit integration compile bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[kfp,demo,dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the package with all extras (pinned by constraints.txt)

demo: $(STAMP) ## Run the retraining loop end to end on generated drifting data (kfp.local)
	$(BIN)/retrain demo --workdir $(DEMO_DIR)

lint: $(STAMP) ## ruff on all Python code
	$(BIN)/ruff check src components pipelines tests benchmarks

typecheck: $(STAMP) ## mypy on src/
	$(BIN)/mypy

unit: $(STAMP) ## Fast tests only
	$(BIN)/pytest -m "not integration" -q

integration: $(STAMP) ## Tests that start real processes (kfp.local, GCS emulator, git)
	$(BIN)/pytest -m integration -q

test: $(STAMP) ## Lint, type-check and the whole test suite
	$(BIN)/ruff check src components pipelines tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q

compile: $(STAMP) ## Compile the pipeline to build/retrain-pipeline.yaml for the Kubeflow UI / kfp CLI
	$(BIN)/retrain compile --output build/retrain-pipeline.yaml

bench: $(STAMP) ## Benchmarks; results in benchmarks/results/
	$(BIN)/python benchmarks/bench_cycle.py --rows 1000000 --features 20 --output benchmarks/results/cycle.md

clean: ## Remove the venv, build output and demo output
	rm -rf $(VENV) build $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
