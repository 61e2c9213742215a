#!/usr/bin/env bash
# What tracing costs: POST /v2/models/lead-scoring/infer (one row, the demo key, metrics and access
# logs at info) through three Cortex processes, one run, alternating rounds:
#
# - off: no OTEL_EXPORTER_OTLP_ENDPOINT (the default);
# - on: every request traced (request, auth, rate_limit, inference spans) and exported over
#   OTLP/HTTP to Tests/Python/otlp_receiver.py on loopback;
# - 1%: the same with OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01;
#
# and bare Hummingbird echoing the same body (the floor). Prints requests/s, p50 and the CPU each
# server spent per request (all threads, /proc), medians of ROUNDS rounds; "off" must be within
# noise of an untraced build (bench/compare.sh against the commit before tracing shows that).
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
OFF_PORT=${OFF_PORT:-18140}
ON_PORT=${ON_PORT:-18141}
SAMPLED_PORT=${SAMPLED_PORT:-18142}
BARE_PORT=${BARE_PORT:-18143}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
. bench/lib.sh

build_cortex BareHummingbird
[ -x .venv/bin/python ] || scripts/onnxruntime.sh >/dev/null

.venv/bin/python Tests/Python/otlp_receiver.py >"$WORK/receiver.log" 2>&1 &
for _ in $(seq 1 200); do grep -q "listening on" "$WORK/receiver.log" && break; sleep 0.05; done
RECEIVER="http://127.0.0.1:$(awk '/listening on/ {print $3}' "$WORK/receiver.log")"

PORT=$BARE_PORT "$BIN/BareHummingbird" >"$WORK/bare.log" 2>&1 &
wait_for "http://127.0.0.1:$BARE_PORT/health"
start_cortex "$OFF_PORT" "" LOG_LEVEL=info
start_cortex "$ON_PORT" "" LOG_LEVEL=info OTEL_EXPORTER_OTLP_ENDPOINT="$RECEIVER"
start_cortex "$SAMPLED_PORT" "" LOG_LEVEL=info OTEL_EXPORTER_OTLP_ENDPOINT="$RECEIVER" \
  OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01

path=/v2/models/lead-scoring/infer
echo "== POST $path: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="off on sampled bare"; else order="bare sampled on off"; fi
  for name in $order; do
    case $name in
      off) run_wrk off "http://127.0.0.1:$OFF_PORT$path" bench/infer.lua ;;
      on) run_wrk on "http://127.0.0.1:$ON_PORT$path" bench/infer.lua ;;
      sampled) run_wrk sampled-1pct "http://127.0.0.1:$SAMPLED_PORT$path" bench/infer.lua ;;
      bare) run_wrk bare-echo "http://127.0.0.1:$BARE_PORT$path" bench/infer.lua ;;
    esac
  done
done

spans=$(curl -fs "$RECEIVER/spans" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["spans"]))')
echo
echo "== results (medians of $ROUNDS rounds; $spans spans received)"
off_rps=$(median off 1); off_cpu=$(median off 4); bare_rps=$(median bare-echo 1)
for name in off on sampled-1pct bare-echo; do
  awk -v n="$name" -v r="$(median "$name" 1)" -v p="$(median "$name" 3)" -v c="$(median "$name" 4)" \
    -v orps="$off_rps" -v ocpu="$off_cpu" -v b="$bare_rps" 'BEGIN {
    printf "%-13s %7.0f req/s (%5.1f%% of off, %5.1f%% of the bare echo)   p50 %.3f ms   cpu %d us/req (%+d us vs off)\n",
      n, r, 100 * r / orps, 100 * r / b, p, c, c - ocpu }'
done
