# assetline: `make help` lists the targets. Everything sets itself up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v javac >/dev/null && command -v mvn >/dev/null || { echo "installing Java 17 and Maven (apt)"; \
		(apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven) >/dev/null; }
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "installing Node.js and npm (apt)"; \
		(apt-get update -qq && apt-get install -y -qq nodejs npm) >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install assetline with dev extras
	$(BIN)/assetline broker fetch >/dev/null

demo: install ## Run the demo campaign end to end on a local Kafka broker
	$(BIN)/assetline demo

test: install ## Run the whole suite, integration tests on a real broker included
	$(BIN)/pytest

test-unit: install ## Run only the tests that need no broker
	$(BIN)/pytest -m "not integration"

check: install ## Lint, type-check, and verify schemas match the models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/assetline schemas check

schemas: install ## Regenerate schemas/*.avsc from schemas/records.py
	$(BIN)/assetline schemas export

bench: install ## Benchmark the whole line (N=10000 by default) and print a table
	$(BIN)/python bench/line.py $(BENCH_ARGS)
	$(BIN)/python -m bench.routing
	$(BIN)/python -m bench.checks

broker-up: install ## Start the local single-node KRaft broker on 127.0.0.1:9092
	$(BIN)/assetline broker up

broker-down: ## Stop the local broker
	$(BIN)/assetline broker down

clean: ## Remove run state (var/), keep the venv and jar cache
	rm -rf var

.PHONY: help install demo test test-unit check schemas bench broker-up broker-down clean
