#!/usr/bin/env bash
# The k6 scenarios of load/k6/ run here with locust (PyPI, into .venv-load): GET /healthz and
# POST /v1/infer, each for DURATION seconds at USERS users, against CORTEX_URL or, unset, a
# release Cortex started on a loopback port for the run. Writes results/SCENARIO.json (locust's
# totals), results/SCENARIO_timeline.json (requests, failures, p50 and p99 of every second) and
# results/load-test.png (throughput and latency over time, for a person to look at).
#
#   make load-test                    # DURATION=30 USERS=32
#   DURATION=10 CORTEX_URL=http://127.0.0.1:8000 scripts/load-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
DURATION=${DURATION:-30}
USERS=${USERS:-32}
RESULTS=${RESULTS:-results}
VENV=.venv-load

if [ ! -x "$VENV/bin/locust" ] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "== installing locust and matplotlib (PyPI, into $VENV)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-load.txt
    # matplotlib builds its font cache on first use: once here, not in the middle of a run.
    MPLBACKEND=Agg "$VENV/bin/python" -c 'import matplotlib.pyplot' >/dev/null 2>&1
fi
# `scripts/load-test.sh install`: only the tools (make test installs them before the tests run).
[ "${1:-}" = install ] && exit 0
mkdir -p "$RESULTS"

URL=${CORTEX_URL:-}
if [ -z "$URL" ]; then
    scripts/c-libraries.sh >/dev/null
    scripts/onnxruntime.sh install >/dev/null
    swift build -c release --product cortex >/dev/null 2>&1
    WORK=$(mktemp -d)
    trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    HOST=127.0.0.1 PORT=$PORT DATABASE_URL="sqlite:$WORK/cortex.db" LOG_LEVEL=warning .build/release/cortex serve >"$WORK/cortex.log" 2>&1 &
    URL="http://127.0.0.1:$PORT"
    for _ in $(seq 1 200); do curl -fs "$URL/ready" >/dev/null 2>&1 && break; sleep 0.05; done
fi

for scenario in healthz infer; do
    class=$([ "$scenario" = healthz ] && echo HealthzUser || echo InferUser)
    echo "== $scenario: $USERS users for ${DURATION}s against $URL"
    LOAD_TIMELINE="$RESULTS/${scenario}_timeline.json" "$VENV/bin/locust" -f load/locustfile.py "$class" --headless --only-summary \
        -u "$USERS" -r "$USERS" -t "${DURATION}s" --host "$URL" --json --loglevel WARNING >"$RESULTS/$scenario.json"
    "$VENV/bin/python" -c '
import json, sys
stats = [s for s in json.load(open(sys.argv[1])) if s["num_requests"] > 0]
for s in stats:
    print("   %s %s: %d requests, %d failed" % (s["method"], s["name"], s["num_requests"], s["num_failures"]))' "$RESULTS/$scenario.json"
done
"$VENV/bin/python" load/plot.py "$RESULTS" healthz infer
