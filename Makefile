# retrain: `make demo` runs the whole loop on this machine; `make test` runs the checks.
# Both build their own virtual environment from scratch on a fresh machine.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-run
CONSTRAINTS := constraints.txt
REGISTRY ?= ghcr.io/retrain-project
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
LINT_PATHS := src components pipelines serving tests benchmarks

.DEFAULT_GOAL := help

.PHONY: help venv demo test lint typecheck unit integration compile bench bench-drift backtest clean images \
	manifests-check manifests-pipelines

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

lint: $(STAMP) ## ruff on all Python code, and the import contracts (layers, no cycles)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/lint-imports

# mypy checks the KFP adapters under the names they are installed as.
TYPING_LINKS := build/typing/retrain_components build/typing/retrain_pipelines
$(TYPING_LINKS):
	mkdir -p build/typing
	ln -sfn ../../components build/typing/retrain_components
	ln -sfn ../../pipelines build/typing/retrain_pipelines

typecheck: $(STAMP) $(TYPING_LINKS) ## mypy --strict on src/, components/ and pipelines/
	$(BIN)/mypy

unit: $(STAMP) ## Fast tests only
	$(BIN)/pytest -m "not integration" -q

integration: $(STAMP) ## Tests that start real processes (kfp.local, GCS emulator, git)
	$(BIN)/pytest -m integration -q

test: $(STAMP) $(TYPING_LINKS) ## Lint, import contracts, type-check, manifests check, all tests
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m retrain.manifests_check --manifests manifests
	$(BIN)/pytest -q

compile: $(STAMP) ## Compile the pipeline to build/retrain-pipeline.yaml for the Kubeflow UI / kfp CLI
	$(BIN)/retrain compile --output build/retrain-pipeline.yaml

backtest: $(STAMP) ## Backtest retraining policies on the standard drift streams; results in benchmarks/results/
	$(BIN)/python -m retrain.backtest.standard benchmarks/results

bench: $(STAMP) ## All benchmarks: cycle, backtest, drift (~60 min); results in benchmarks/results/
	$(BIN)/python benchmarks/bench_cycle.py --rows 1000000 --features 20 --threads 1 --output benchmarks/results/cycle.md
	$(BIN)/python benchmarks/bench_backtest.py
	$(MAKE) bench-drift

bench-drift: $(STAMP) ## Drift engine vs Evidently, NannyML, alibi-detect, scipy (own venv, ~30 min)
	$(BIN)/python benchmarks/bench_drift.py --rows 100000,1000000,5000000 --output benchmarks/results/drift.md

manifests-check: $(STAMP) ## Render every overlay; schemas, security rules, consistency
	$(BIN)/python -m retrain.manifests_check --manifests manifests

manifests-pipelines: $(STAMP) ## Recompile the pipeline each overlay ships in its ConfigMap
	$(BIN)/python -m retrain.manifests_check --manifests manifests --write-pipelines

images: ## Build and push the components and serving images (needs docker or an OCI builder)
	docker build -f components/Dockerfile -t $(REGISTRY)/retrain:$(VERSION) .
	docker build -f serving/Dockerfile -t $(REGISTRY)/retrain-serving:$(VERSION) .
	docker push $(REGISTRY)/retrain:$(VERSION)
	docker push $(REGISTRY)/retrain-serving:$(VERSION)

clean: ## Remove the venv, build output and demo output
	rm -rf $(VENV) build $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
