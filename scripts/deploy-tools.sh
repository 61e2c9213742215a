#!/usr/bin/env bash
# The validators of the deployment files (`make test`): kubernetes-validate (the Kubernetes
# schemas, offline), checkov (security settings), hadolint (the Dockerfile), jsonschema and the
# Compose Specification's schema (compose.yml), in .venv-deploy, apart
# from the test clients' .venv since checkov pins packages of its own; and kubectl for
# `kubectl kustomize` (from Debian when missing). Prints the tools' folder.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-deploy
if [ ! -x "$VENV/bin/checkov" ] || [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
    echo "== installing kubernetes-validate, checkov and hadolint (PyPI, into $VENV)" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-deploy.txt >&2
fi
# The Compose Specification's JSON schema, as docker-compose's wheel ships it (PyPI).
if [ ! -s "$VENV/compose_spec.json" ]; then
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$VENV/wheels" docker-compose==1.29.2 >&2
    "$VENV/bin/python" -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))' \
        "$VENV"/wheels/docker_compose-1.29.2-py2.py3-none-any.whl >"$VENV/compose_spec.json"
fi
if ! command -v node >/dev/null; then
    echo "== installing Node.js (Debian), to check the k6 scripts' syntax" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq nodejs >&2
fi
if ! command -v kubectl >/dev/null; then
    echo "== installing kubectl (Debian)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && (apt-get install -y -qq kubectl >&2 || apt-get install -y -qq kubernetes-client >&2)
fi
echo "$PWD/$VENV/bin"
