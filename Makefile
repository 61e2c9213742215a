# Cortex: the two commands are `make run` and `make test`; see README.md.
SWIFT ?= swift

.PHONY: run build release image-libraries onnxruntime test lint format bench bench-llm bench-models bench-tracing llm-check probe models image-models clean

## Build in release mode, install ONNX Runtime (PyPI, into .venv) and serve the bundled models on http://127.0.0.1:8000.
run: release onnxruntime
	.build/release/cortex serve $(ARGS)

onnxruntime:
	scripts/onnxruntime.sh install

build: image-libraries
	$(SWIFT) build

release: image-libraries
	$(SWIFT) build -c release --product cortex

image-libraries:
	scripts/c-libraries.sh

## Set up whatever the tests need, check formatting, build and run every test.
test:
	scripts/test.sh

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

clean:
	rm -rf .build data
