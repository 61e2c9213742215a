#!/usr/bin/env bash
# Ledger benchmark: what billing costs on the inference route, and how well group commit works.
#
# Runs three release servers side by side on one model: free (no price), billed on SQLite, and
# billed on PostgreSQL (a throw-away cluster from scripts/postgres.sh), and measures each billed
# one against the free one in the same run, alternating order, ROUNDS times (medians).
# A billed request makes two ledger writes (hold, then settle), each waited for until durable;
# the figures show how many writes share one transaction (one fsync).
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32),
# SKIP_POSTGRES=1 to leave PostgreSQL out.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
FREE_PORT=${FREE_PORT:-18090}
SQLITE_PORT=${SQLITE_PORT:-18091}
PG_PORT=${PG_PORT:-18092}
WORK=$(mktemp -d)
PG_DIR=""
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$PG_DIR" ] && scripts/postgres.sh stop "$PG_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib.sh

build_cortex
ROUTE=/v2/models/lead-scoring/infer

# A price of one micro-credit and a balance that lasts far longer than the run.
BILLED=(MODEL_PRICES=lead-scoring=0.000001 DEMO_CREDITS=1000000000)
start_cortex "$FREE_PORT"
start_cortex "$SQLITE_PORT" "" "${BILLED[@]}"
SERVERS="sqlite"
if [ "${SKIP_POSTGRES:-0}" != 1 ]; then
  eval "$(scripts/postgres.sh start)"
  PG_DIR=$CORTEX_TEST_POSTGRES_DIR
  start_cortex "$PG_PORT" "$CORTEX_TEST_POSTGRES_URL" "${BILLED[@]}"
  SERVERS="sqlite postgres"
fi
port_of() { case $1 in free) echo "$FREE_PORT" ;; sqlite) echo "$SQLITE_PORT" ;; postgres) echo "$PG_PORT" ;; esac; }

metric() { # port name: the sum of a metric's samples
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f", s}'
}

echo "== POST $ROUTE, one row: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
  order="free $SERVERS"
  [ $((round % 2)) = 0 ] && order="$SERVERS free"
  for name in $order; do
    run_wrk "$name" "http://127.0.0.1:$(port_of "$name")$ROUTE" bench/infer.lua
  done
done

echo
echo "== figures (medians; the baseline is the free server in the same run)"
for name in $SERVERS; do
  port=$(port_of "$name")
  requests=$(curl -fs "http://127.0.0.1:$port/metrics" \
    | awk '/^http_requests_total\{.*route="\/v2\/models\/\{model\}\/infer".*status="200"/ {s+=$2} END {printf "%d", s}')
  writes=$(metric "$port" ledger_batch_size_sum)
  transactions=$(metric "$port" ledger_batch_size_count)
  awk -v a="$(median "$name" 1)" -v b="$(median free 1)" -v n="$name" \
    'BEGIN {printf "%-8s billed/free requests/s   %.1f%% (%.0f / %.0f req/s)\n", n, 100*a/b, a, b}'
  echo "$name   p99 billed / free         $(median "$name" 2) ms / $(median free 2) ms"
  awk -v r="$requests" -v w="$writes" -v t="$transactions" -v n="$name" 'BEGIN {
    printf "%-8s ledger writes per transaction %.1f   transactions per billed request %.3f   (%d requests, %d transactions)\n",
      n, (t > 0 ? w / t : 0), (r > 0 ? t / r : 0), r, t }'
done
