#!/usr/bin/env bash
# Rate-limit benchmark: what the limiters cost on the scoring route, in the same run (alternating
# order, ROUNDS times, medians): limits off, the local limiter, and the limiter shared through
# Redis (a throw-away redis-server from scripts/redis.sh).
#
# The limited server's limit is far above what wrk can send, so every request is decided and
# allowed: the figure is the cost of deciding, not of refusing.
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
OFF_PORT=${OFF_PORT:-18095}
LOCAL_PORT=${LOCAL_PORT:-18096}
REDIS_PORT_CORTEX=${REDIS_PORT_CORTEX:-18097}
WORK=$(mktemp -d)
REDIS_DIR=""
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$REDIS_DIR" ] && scripts/redis.sh stop "$REDIS_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib.sh

build_cortex
ROUTE=/api/v1/score

start_cortex "$OFF_PORT"
start_cortex "$LOCAL_PORT" "" RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000
eval "$(scripts/redis.sh start)"
REDIS_DIR=$CORTEX_TEST_REDIS_DIR
start_cortex "$REDIS_PORT_CORTEX" "" RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000 REDIS_URL="$CORTEX_TEST_REDIS_URL"

echo "== POST $ROUTE: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="off local redis"; else order="redis local off"; fi
  for name in $order; do
    case $name in off) port=$OFF_PORT ;; local) port=$LOCAL_PORT ;; redis) port=$REDIS_PORT_CORTEX ;; esac
    run_wrk "$name" "http://127.0.0.1:$port$ROUTE" bench/score.lua
  done
done

backend=$(curl -fs "http://127.0.0.1:$REDIS_PORT_CORTEX/metrics" | awk '/^rate_limit_backend_up/ {print $2}')
echo
echo "== figures (medians; the baseline is the same server with limits off, in the same run)"
awk -v a="$(median local 1)" -v b="$(median off 1)" \
  'BEGIN {printf "local limiter / off requests/s   %.1f%% (%.0f / %.0f req/s)   target >= 98%%\n", 100*a/b, a, b}'
echo "p99 local / off                  $(median local 2) ms / $(median off 2) ms"
awk -v a="$(median redis 1)" -v b="$(median local 1)" \
  'BEGIN {printf "redis limiter / local requests/s  %.1f%% (%.0f / %.0f req/s)   target >= 70%%\n", 100*a/b, a, b}'
awk -v a="$(median redis 2)" -v b="$(median local 2)" \
  'BEGIN {printf "p99 redis - local                 %.2f ms (%s / %s ms)   target <= 1 ms\n", a-b, a, b}'
echo "rate_limit_backend_up at the end  $backend (1: every decision went to Redis)"
