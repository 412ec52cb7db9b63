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
LINT_PATHS := src components pipelines serving tests benchmarks tools

.DEFAULT_GOAL := help

.PHONY: help venv demo test lint typecheck unit integration chaos compile bench bench-decisions bench-drift bench-drift-sample bench-scale backtest clean images \
	manifests-check manifests-pipelines

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(CONSTRAINTS) build-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c build-constraints.txt pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --build-constraint build-constraints.txt \
		-e '.[kfp,demo,dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the package with all extras (pinned by constraints.txt)

demo: $(STAMP) ## Run the retraining loop end to end on generated drifting data (kfp.local)
	$(BIN)/retrain demo --workdir $(DEMO_DIR)

lint: $(STAMP) ## ruff on all Python code, and the import contracts (layers, no cycles)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
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

CHAOS_SECONDS ?= 180
chaos: $(STAMP) ## The local loop under random SIGKILLs, each killed run re-run, invariants checked
	$(BIN)/python -m tools.chaos --seconds $(CHAOS_SECONDS) --workdir build/chaos

test: $(STAMP) $(TYPING_LINKS) ## Lint, import contracts, type-check, manifests check, all tests
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m tools.manifests_check --manifests manifests
	$(BIN)/pytest -q

compile: $(STAMP) ## Compile the pipeline to build/retrain-pipeline.yaml for the Kubeflow UI / kfp CLI
	$(BIN)/retrain compile --output build/retrain-pipeline.yaml

backtest: $(STAMP) ## Backtest retraining policies on the standard drift streams; results in benchmarks/results/
	$(BIN)/python -m retrain.backtest.standard benchmarks/results

bench: $(STAMP) ## All benchmarks: cycle, backtest, threads, decisions, scale, drift; results in benchmarks/results/
	$(BIN)/python benchmarks/bench_cycle.py --rows 1000000 --features 20 --threads 1 --output benchmarks/results/cycle.md
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/bench_threads.py
	$(MAKE) bench-decisions
	$(MAKE) bench-scale
	$(MAKE) bench-drift

bench-decisions: $(STAMP) ## Error rates of the gates, canary checks, drift verdicts, the labelled performance signal and the drift back-off (simulations)
	$(BIN)/python benchmarks/bench_decisions.py --output benchmarks/results/decisions.md

# Rows per window of the scale benchmark (the target size is 1,000,000; the committed results
# name the size they were run at).
SCALE_ROWS ?= 1000000

bench-scale: $(STAMP) ## Cost by history kept (1/5/20 windows), source size (5/50 windows), models (1/10/50)
	$(BIN)/python benchmarks/bench_scale.py --rows $(SCALE_ROWS) --output benchmarks/results/scale.md

bench-drift: $(STAMP) ## Drift engine vs Evidently, NannyML, alibi-detect, scipy (own venv; about an hour)
	$(BIN)/python benchmarks/bench_drift.py --rows 100000,1000000 --timeout 1800 --output benchmarks/results/drift.md
	$(MAKE) bench-drift-sample

bench-drift-sample: $(STAMP) ## What judging a column of 1M values on a 100,000-value sample costs in accuracy
	$(BIN)/python benchmarks/bench_drift_sample.py --reps 10 --output benchmarks/results/drift-sample.md

manifests-check: $(STAMP) ## Render every overlay; schemas, security rules, consistency
	$(BIN)/python -m tools.manifests_check --manifests manifests

manifests-pipelines: $(STAMP) ## Recompile the pipeline each overlay ships in its ConfigMap
	$(BIN)/python -m tools.manifests_check --manifests manifests --write-pipelines

images: ## Build and push the components and serving images (needs docker or an OCI builder)
	docker build -f components/Dockerfile -t $(REGISTRY)/retrain:$(VERSION) .
	docker build -f serving/Dockerfile -t $(REGISTRY)/retrain-serving:$(VERSION) .
	docker push $(REGISTRY)/retrain:$(VERSION)
	docker push $(REGISTRY)/retrain-serving:$(VERSION)

clean: ## Remove the venv, build output and demo output
	rm -rf $(VENV) build $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

# --- constraints.txt and build-constraints.txt, re-resolved from pyproject.toml by uv -----------
# constraints.txt: every distribution `pip install -e '.[kfp,demo,dev]'` installs on Linux x86_64
# with Python 3.11 (the components image's), and nothing else. build-constraints.txt: the pip the
# images install with (25.3 brought --build-constraint) and the setuptools of every isolated
# build: pyproject.toml's [build-system], and pip's default setuptools>=40.8.0 for sdists without
# a pyproject.toml (kfp-server-api). Pins already in a file are kept while the requirements
# allow them; `make constraints UV_FLAGS=--upgrade` (or --upgrade-package NAME) moves them.
# Needs Python >= 3.11 (tomllib) and uv: the dev extra's, or UV=path/to/uv.
UV ?= $(BIN)/uv
UV_FLAGS ?=
UV_COMPILE = $(UV) pip compile --quiet --no-header --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 $(UV_FLAGS)
CONSTRAINTS_HEADER = \
	'\# Generated by `make constraints` (uv pip compile for Python 3.11 on Linux x86_64)' \
	'\# from pyproject.toml; the Makefile says what it pins. Edit pyproject.toml, not this.'

.PHONY: constraints
constraints: ## Re-resolve constraints.txt and build-constraints.txt from pyproject.toml (uv)
	command -v $(UV) >/dev/null || { $(PYTHON) -m venv $(VENV) \
		&& $(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) uv; }
	$(UV_COMPILE) pyproject.toml --extra kfp --extra demo --extra dev --output-file $(CONSTRAINTS)
	{ echo 'pip>=25.3'; echo 'setuptools>=40.8.0'; $(PYTHON) -c 'import tomllib; \
		print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'; \
	} | $(UV_COMPILE) --no-annotate - --output-file build-constraints.txt
	for f in $(CONSTRAINTS) build-constraints.txt; do \
		{ printf '%s\n' $(CONSTRAINTS_HEADER); cat $$f; } > $$f.tmp && mv $$f.tmp $$f; done
