#!/usr/bin/env bash
# Prometheus and promtool for the tests (`make test`): the rule unit tests and a real Prometheus
# scraping a real Cortex process. Installs Debian's prometheus package when promtool is missing;
# the tests start their own server on a loopback port (the package's own service is not used).
set -euo pipefail
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "== installing Prometheus from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends prometheus >&2
fi
# Debian's package starts its own service where an init system runs; the tests do not need it.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus >&2 || true
fi
promtool --version | head -1
