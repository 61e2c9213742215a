#!/usr/bin/env bash
# Two Cortex replicas behind nginx, sharing one PostgreSQL and one Redis, under billed load.
#
# nginx (Debian's, installed if missing) sends requests round-robin over keep-alive connections
# to two `cortex serve` processes that share a throw-away PostgreSQL cluster (the ledger) and a
# throw-away redis-server (the rate limits, set far above the load so every request is decided
# and allowed). wrk drives `POST /v2/models/lead-scoring/infer`, one row, with keys of TENANTS
# tenants picked at random per request. The floor, in the same run and alternating with it: two
# unbilled replicas behind the same nginx. Then it checks the books: `cortex db verify` is clean,
# and the tenants' balances fell by exactly the price of every settled request.
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32),
# TENANTS (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
TENANTS=${TENANTS:-64}
BILLED_PORT=${BILLED_PORT:-18180}
FREE_PORT=${FREE_PORT:-18181}
REPLICA_PORTS=(18182 18183)
FREE_PORTS=(18184 18185)
WORK=$(mktemp -d)
PG_DIR="" REDIS_DIR="" NGINX_PID=""
ADMIN=bench-admin-token-0123456789
cleanup() {
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$PG_DIR" ] && scripts/postgres.sh stop "$PG_DIR"
  [ -n "$REDIS_DIR" ] && scripts/redis.sh stop "$REDIS_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib.sh
. bench/tenants.sh

ensure_nginx
build_cortex
ROUTE=/v2/models/lead-scoring/infer
eval "$(scripts/postgres.sh start)"
PG_DIR=$CORTEX_TEST_POSTGRES_DIR
eval "$(scripts/redis.sh start)"
REDIS_DIR=$CORTEX_TEST_REDIS_DIR
FREE_DB=${CORTEX_TEST_POSTGRES_URL/\/postgres\?/\/free?}
runuser -u postgres -- psql -h 127.0.0.1 -p "$(echo "$CORTEX_TEST_POSTGRES_URL" | sed -E 's#.*:([0-9]+)/.*#\1#')" -qc "CREATE DATABASE free" postgres

COMMON=(ADMIN_TOKEN=$ADMIN REDIS_URL=$CORTEX_TEST_REDIS_URL RATE_LIMIT_RPS=1000000 RATE_LIMIT_BURST=1000000)
for port in "${REPLICA_PORTS[@]}"; do
  start_cortex "$port" "$CORTEX_TEST_POSTGRES_URL" "${COMMON[@]}" MODEL_PRICES=lead-scoring=0.000001
done
for port in "${FREE_PORTS[@]}"; do
  start_cortex "$port" "$FREE_DB" "${COMMON[@]}"
done

start_nginx "
  upstream billed { server 127.0.0.1:${REPLICA_PORTS[0]}; server 127.0.0.1:${REPLICA_PORTS[1]}; keepalive 64; }
  upstream free { server 127.0.0.1:${FREE_PORTS[0]}; server 127.0.0.1:${FREE_PORTS[1]}; keepalive 64; }
  server { listen 127.0.0.1:$BILLED_PORT; location / { proxy_pass http://billed; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:$FREE_PORT; location / { proxy_pass http://free; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_for "http://127.0.0.1:$BILLED_PORT/health"
wait_for "http://127.0.0.1:$FREE_PORT/health"

echo "== $TENANTS tenants with a key each, on both databases"
make_tenants "${REPLICA_PORTS[0]}" "$TENANTS" 1000000 "$WORK/billed.keys"
make_tenants "${FREE_PORTS[0]}" "$TENANTS" 1000000 "$WORK/free.keys"
tenants_lua "$WORK/billed.keys" "$WORK/billed.lua"
tenants_lua "$WORK/free.keys" "$WORK/free.lua"

balances() { # the sum of the bench tenants' balances in micro-credits, with what replicas have leased of them
  psql "$CORTEX_TEST_POSTGRES_URL" -Atc "SELECT COALESCE(SUM(balance_micros), 0)
    + (SELECT COALESCE(SUM(amount_micros), 0) FROM credit_leases WHERE tenant_id IN (SELECT id FROM tenants WHERE name LIKE 'bench-%'))
    FROM tenants WHERE name LIKE 'bench-%'"
}
settled() { # 200s on the route, both billed replicas
  echo $(($(infer_200s "${REPLICA_PORTS[0]}") + $(infer_200s "${REPLICA_PORTS[1]}")))
}
metric_sum() { # name: summed over the billed replicas
  local port
  for port in "${REPLICA_PORTS[@]}"; do curl -fs "http://127.0.0.1:$port/metrics"; done |
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f", s}'
}

BEFORE_BALANCE=$(balances)
BEFORE_SETTLED=$(settled)
echo "== POST $ROUTE through nginx, $TENANTS tenants: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
  order="free billed"
  [ $((round % 2)) = 0 ] && order="billed free"
  for name in $order; do
    port=$BILLED_PORT
    [ "$name" = free ] && port=$FREE_PORT
    pg_before=$(postgres_ticks)
    requests_before=$(settled)
    run_wrk "$name" "http://127.0.0.1:$port$ROUTE" "$WORK/$name.lua"
    if [ "$name" = billed ]; then
      awk -v t=$(($(postgres_ticks) - pg_before)) -v n=$(($(settled) - requests_before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f\n", (n > 0 ? t * 1e6 / hz / n : 0)}' >>"$WORK/pgcpu"
    fi
  done
done
AFTER_BALANCE=$(balances)
AFTER_SETTLED=$(settled)

echo
echo "== figures (medians; the floor is two unbilled replicas behind the same nginx)"
awk -v a="$(median billed 1)" -v b="$(median free 1)" -v p="$(median billed 2)" -v q="$(median free 2)" \
  'BEGIN {printf "two billed replicas / two free replicas   %.1f%% (%.0f / %.0f req/s)   p99 %s / %s ms\n", 100*a/b, a, b, p, q}'
echo "PostgreSQL's CPU per billed request       $(sort -n "$WORK/pgcpu" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}') us (median of rounds)"
awk -v w="$(metric_sum ledger_batch_size_sum)" -v t="$(metric_sum ledger_batch_size_count)" -v x="$(metric_sum ledger_batch_retries_total)" \
  'BEGIN {printf "ledger writes per transaction             %.1f (%d transactions, %d retried one by one)\n", (t > 0 ? w / t : 0), t, x}'

echo
echo "== the books"
DROP=$((BEFORE_BALANCE - AFTER_BALANCE))
COUNT=$((AFTER_SETTLED - BEFORE_SETTLED))
echo "settled requests: $COUNT; balances fell by $DROP micro-credits (price 1 each)"
VERIFY=$(DATABASE_URL=$CORTEX_TEST_POSTGRES_URL "$BIN/cortex" db verify 2>&1 || true)
echo "$VERIFY" | tail -3
if [ "$DROP" != "$COUNT" ] || ! echo "$VERIFY" | grep -q '^database OK'; then
  echo "FAILED: the balance drop must equal the settled requests and db verify must be clean" >&2
  exit 1
fi
echo "ok: the balance drop equals the settled requests, and db verify is clean"
