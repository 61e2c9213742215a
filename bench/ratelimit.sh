#!/usr/bin/env bash
# Rate-limit benchmark: what the limiter costs on the scoring route, against the same server with
# limits off, in the same run (alternating order, ROUNDS times, medians).
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
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
. bench/lib.sh

echo "== building the release binary"
swift build -c release --product cortex >/dev/null
BIN=$(swift build -c release --show-bin-path)
ROUTE=/api/v1/score

start() { # port [env...]
  local port=$1
  shift
  env HOST=127.0.0.1 PORT="$port" DATABASE_URL="sqlite:$WORK/$port.db" "$@" "$BIN/cortex" serve >"$WORK/$port.log" 2>&1 &
  wait_for "http://127.0.0.1:$port/ready"
}
start "$OFF_PORT"
start "$LOCAL_PORT" RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000

echo "== POST $ROUTE: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="off local"; else order="local off"; fi
  for name in $order; do
    port=$OFF_PORT
    [ "$name" = local ] && port=$LOCAL_PORT
    run_wrk "$name" "http://127.0.0.1:$port$ROUTE" bench/score.lua
  done
done

limited=$(curl -fs "http://127.0.0.1:$LOCAL_PORT/metrics" | awk '/^rate_limit_decisions_total\{result="allowed"\}/ {print $2}')
echo
echo "== figures (medians; the baseline is the same server with limits off, in the same run)"
awk -v a="$(median local 1)" -v b="$(median off 1)" \
  'BEGIN {printf "local limiter / off requests/s   %.1f%% (%.0f / %.0f req/s)   target >= 98%%\n", 100*a/b, a, b}'
echo "p99 local / off                  $(median local 2) ms / $(median off 2) ms"
echo "decisions counted                $limited"
