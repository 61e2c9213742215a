#!/usr/bin/env bash
# Ledger benchmark: what billing costs on the inference route, and how well group commit works.
#
# Runs three release servers side by side on one model: free (no price), billed on SQLite, and
# billed on PostgreSQL (a throw-away cluster from scripts/postgres.sh), and measures each billed
# one against the free one in the same run, alternating order, ROUNDS times (medians):
#   1. one tenant (the demo key) at CONNECTIONS connections;
#   2. requests spread over TENANTS tenants (a key each, picked at random per request);
#   3. one connection: the p50 billing adds, beside one fdatasync p50 of the same disk.
# A billed request makes one ledger write on a credit lease (its settlement, durable before the
# 200; a lease per CREDIT_LEASE_HOLDS requests), two without (hold, then settle); the figures
# show how many writes share one transaction (one commit).
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32),
# TENANTS (default 64), SKIP_POSTGRES=1 to leave PostgreSQL out, LEASE_HOLDS (the billed
# servers' CREDIT_LEASE_HOLDS, default 100; 0 measures database holds).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
TENANTS=${TENANTS:-64}
FREE_PORT=${FREE_PORT:-18090}
SQLITE_PORT=${SQLITE_PORT:-18091}
PG_PORT=${PG_PORT:-18092}
WORK=$(mktemp -d)
PG_DIR=""
ADMIN=bench-admin-token-0123456789
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$PG_DIR" ] && scripts/postgres.sh stop "$PG_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib.sh
. bench/tenants.sh

build_cortex
ROUTE=/v2/models/lead-scoring/infer

# A price of one micro-credit and balances that last far longer than the run.
BILLED=(MODEL_PRICES=lead-scoring=0.000001 DEMO_CREDITS=1000000000 CREDIT_LEASE_HOLDS=${LEASE_HOLDS:-100})
start_cortex "$FREE_PORT" "" ADMIN_TOKEN=$ADMIN
start_cortex "$SQLITE_PORT" "" ADMIN_TOKEN=$ADMIN "${BILLED[@]}"
SERVERS="sqlite"
if [ "${SKIP_POSTGRES:-0}" != 1 ]; then
  eval "$(scripts/postgres.sh start)"
  PG_DIR=$CORTEX_TEST_POSTGRES_DIR
  start_cortex "$PG_PORT" "$CORTEX_TEST_POSTGRES_URL" ADMIN_TOKEN=$ADMIN "${BILLED[@]}"
  SERVERS="sqlite postgres"
fi
port_of() { case $1 in free*) echo "$FREE_PORT" ;; sqlite*) echo "$SQLITE_PORT" ;; postgres*) echo "$PG_PORT" ;; esac; }

metric() { # port name: the sum of a metric's samples
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f", s}'
}

echo "== $TENANTS tenants with a key each on every server"
for name in free $SERVERS; do
  port=$(port_of "$name")
  make_tenants "$port" "$TENANTS" 1000000 "$WORK/$port.keys"
  tenants_lua "$WORK/$port.keys" "$WORK/$port.lua"
done

# Runs every server ROUNDS times with the wrk script `lua` (a path, or "tenants" for the
# server's own TENANTS keys), alternating the order; results under NAME-SUFFIX.
measure() { # suffix lua
  local round order name port lua pg_before pg_after before_requests
  for round in $(seq 1 "$ROUNDS"); do
    order="free $SERVERS"
    [ $((round % 2)) = 0 ] && order="$SERVERS free"
    for name in $order; do
      port=$(port_of "$name")
      lua=$2
      [ "$lua" = tenants ] && lua=$WORK/$port.lua
      pg_before=$(postgres_ticks)
      before_requests=$(infer_200s "$port")
      run_wrk "$name-$1" "http://127.0.0.1:$port$ROUTE" "$lua"
      pg_after=$(postgres_ticks)
      if [ "$name" = postgres ]; then
        awk -v t=$((pg_after - pg_before)) -v n=$(($(infer_200s "$port") - before_requests)) -v hz="$(getconf CLK_TCK)" \
          'BEGIN {printf "%.0f\n", (n > 0 ? t * 1e6 / hz / n : 0)}' >>"$WORK/postgres-$1.pgcpu"
      fi
    done
  done
}
summary() { # suffix title
  local name port
  echo "-- $2"
  for name in $SERVERS; do
    awk -v a="$(median "$name-$1" 1)" -v b="$(median "free-$1" 1)" -v n="$name" -v p="$(median "$name-$1" 2)" -v q="$(median "free-$1" 2)" \
      'BEGIN {printf "%-8s billed/free requests/s %5.1f%% (%.0f / %.0f req/s)   p99 %s / %s ms\n", n, 100*a/b, a, b, p, q}'
    if [ "$name" = postgres ]; then
      echo "postgres PostgreSQL's CPU per billed request: $(sort -n "$WORK/postgres-$1.pgcpu" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}') us (median of rounds)"
    fi
  done
}

echo "== POST $ROUTE, one row, one tenant: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
measure one bench/infer.lua
echo "== the same, spread over $TENANTS tenants"
measure many tenants
SAVED_CONNECTIONS=$CONNECTIONS
CONNECTIONS=1
echo "== the same, one tenant, at one connection"
measure single bench/infer.lua
CONNECTIONS=$SAVED_CONNECTIONS

# One fdatasync of the disk the databases are on, measured now: what one durable commit costs at least.
FSYNC_P50=$(python3 - "$WORK" <<'PY'
import os, sys, time
fd = os.open(os.path.join(sys.argv[1], "fsync-probe"), os.O_WRONLY | os.O_CREAT)
times = []
for _ in range(500):
    os.write(fd, b"x" * 512)
    start = time.perf_counter()
    os.fdatasync(fd)
    times.append(time.perf_counter() - start)
times.sort()
print("%.3f" % (times[len(times) // 2] * 1e3))
PY
)

echo
echo "== figures (medians; the baseline is the free server in the same run)"
summary one "one tenant, $CONNECTIONS connections (target: PostgreSQL >= 20%, SQLite >= 60%)"
summary many "$TENANTS tenants, $CONNECTIONS connections (target: PostgreSQL >= 40%)"
echo "-- one connection (target: p50 added <= one fdatasync p50 + 0.1 ms; fdatasync p50 here ${FSYNC_P50} ms)"
for name in $SERVERS; do
  awk -v a="$(median "$name-single" 3)" -v b="$(median free-single 3)" -v f="$FSYNC_P50" -v n="$name" \
    'BEGIN {printf "%-8s p50 %.3f ms, free %.3f ms: billing adds %.3f ms (bound %.3f ms)\n", n, a, b, a - b, f + 0.1}'
done
echo "-- group commit"
for name in $SERVERS; do
  port=$(port_of "$name")
  requests=$(infer_200s "$port")
  writes=$(metric "$port" ledger_batch_size_sum)
  transactions=$(metric "$port" ledger_batch_size_count)
  retried=$(metric "$port" ledger_batch_retries_total)
  awk -v r="$requests" -v w="$writes" -v t="$transactions" -v n="$name" -v x="$retried" 'BEGIN {
    printf "%-8s ledger writes per transaction %.1f   transactions per billed request %.3f   (%d requests, %d transactions, %d retried one by one)\n",
      n, (t > 0 ? w / t : 0), (r > 0 ? t / r : 0), r, t, x }'
done
