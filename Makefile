# Cortex: the two commands are `make run` and `make test`; see README.md.
SWIFT ?= swift

.PHONY: help run install dev build release image-libraries onnxruntime test test-unit test-integration lint format docker-build docker-run docker-compose-up docker-compose-down load-test bench bench-llm bench-models bench-tracing bench-ledger bench-replicas bench-embeddings llm-check probe models image-models clean

## List the targets, one line each.
help:
	@awk '/^## / {doc = substr($$0, 4); next} /^[a-z][a-z0-9-]*:/ && doc != "" {split($$1, t, ":"); printf "  %-18s %s\n", t[1], doc} {doc = ""}' $(MAKEFILE_LIST)

## Build in release mode, install ONNX Runtime (PyPI, into .venv) and serve the bundled models on http://127.0.0.1:8000.
run: release onnxruntime
	.build/release/cortex serve $(ARGS)

## Install what Cortex needs (Debian libraries, ONNX Runtime into .venv) and build the release binary.
install: release onnxruntime

## Serve a debug build with readable logs (LOG_FORMAT=text) for development.
dev: build onnxruntime
	LOG_FORMAT=text LOG_LEVEL=debug .build/debug/cortex serve $(ARGS)

## Install ONNX Runtime and the test clients from PyPI into .venv.
onnxruntime:
	scripts/onnxruntime.sh install

## Build in debug mode.
build: image-libraries
	$(SWIFT) build

## Build the release binary.
release: image-libraries
	$(SWIFT) build -c release --product cortex

## Install the SQLite, libpng and libjpeg-turbo headers from Debian when missing.
image-libraries:
	scripts/c-libraries.sh

## Set up whatever the tests need, check formatting, build and run every test.
test:
	scripts/test.sh

## The core and runtime test targets: no database server, Redis or Prometheus needed (ONNX Runtime from .venv).
test-unit: build onnxruntime
	$(SWIFT) test --filter 'CortexCoreTests|CortexRuntimeTests'

## Every test, with the services they need (the same as make test).
test-integration: test

## Build the container image (needs Docker), tagged with the version and the commit.
docker-build:
	docker build --build-arg BUILD_SHA="$$(git rev-parse --short HEAD)" -t cortex:0.1.0 .

## Run the container image on port 8000 with its SQLite file in the volume cortex-data (needs Docker).
docker-run:
	docker run --rm -p 8000:8000 -v cortex-data:/app/data cortex:0.1.0

## Start the compose stack: Cortex on PostgreSQL and Redis, Prometheus, Grafana (needs Docker).
docker-compose-up:
	docker compose up -d --build

## The k6 scenarios (load/k6) with locust against a fresh release Cortex (or CORTEX_URL): results/*.json and results/load-test.png.
load-test:
	scripts/load-test.sh

## Stop the compose stack (its volumes stay; add -v to docker compose down to drop them).
docker-compose-down:
	docker compose down

## Fail on code that `swift format` would change.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests bench Package.swift

## Format the code in place.
format:
	$(SWIFT) format --in-place --recursive Sources Tests bench Package.swift

## Load benchmarks against bare Hummingbird (prints figures and ratios).
bench:
	bench/run.sh

## The LLM gateway's benchmark against a fast fake upstream (prints figures and ratios).
bench-llm:
	bench/llm.sh

## RSS across 20 promotions and 20 unload/load cycles of a 17 MB model under load.
bench-models:
	bench/models.sh

## CPU per request with tracing off, on and sampled at 1%, against bare Hummingbird.
bench-tracing:
	bench/tracing.sh

## What billing costs on SQLite and PostgreSQL: one tenant, 64 tenants, one connection.
bench-ledger:
	bench/ledger.sh

## Two replicas behind nginx sharing PostgreSQL and Redis, billed over 64 tenants; checks the books.
bench-replicas:
	bench/replicas.sh

## POST /v1/embeddings against FastAPI + tokenizers + ONNX Runtime on the same model (bench/embeddings.sh).
bench-embeddings:
	bench/embeddings.sh

## Cortex against a real llama.cpp server with Gemma 3 270M (first run builds llama.cpp: ~15 min).
llm-check:
	scripts/llm-real.sh

## Mutated requests to every POST route of a release build for SECONDS (default 600); fails on any 5xx, crash or ledger drift.
probe: release onnxruntime
	python3 scripts/mutation-probe.py --seconds $${SECONDS_TO_RUN:-600}

## Re-train the bundled models and their fixtures (needs xgboost from PyPI).
models:
	python3 scripts/train_models.py

## Re-train the two bundled ONNX image classifiers, their test images and fixtures (PyPI packages into .venv).
image-models: onnxruntime
	.venv/bin/pip install -q -r scripts/requirements-models.txt
	.venv/bin/python scripts/make_image_models.py

## Remove build outputs and the local database.
clean:
	rm -rf .build data
