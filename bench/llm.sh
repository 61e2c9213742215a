#!/usr/bin/env bash
# LLM gateway benchmark, all in one run on one machine, against a fast fake OpenAI-compatible
# upstream (bench/BareHummingbird's /v1/chat/completions: a fixed answer with usage):
#
# 1. What Cortex adds to a chat completion: POST /v1/chat/completions through Cortex (API key,
#    rate limit, per-token billing on the SQLite ledger, metrics, access logs at info) against
#    the same request sent to the upstream directly, at CONNECTIONS connections (default 32) and
#    at one. Targets: <= 0.3 ms more at p50 and <= 2 ms more at p99 at 32 connections.
#    The same through a second Cortex with prices at 0 (no ledger writes) shows what billing costs,
#    and through bare Hummingbird forwarding with AsyncHTTPClient (no auth, limits, billing,
#    metrics or logs) shows the floor: what any proxy on this stack adds on this machine. nginx as
#    a reverse proxy (keep-alive to the upstream) is the other floor: what a proxy written for
#    proxying adds. Targets (issue 19): unbilled Cortex >= 70% of nginx's requests/s, <= 0.15 ms
#    added at p50 at one connection; billed >= 85% of unbilled.
# 2. What streaming adds to the time to first token: bench/ttft.py, TTFT_REQUESTS sequential
#    streamed requests through Cortex and directly. Target (issue 19): <= 0.3 ms more, billed.
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32),
# TTFT_REQUESTS (default 500).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
TTFT_REQUESTS=${TTFT_REQUESTS:-500}
CORTEX_PORT=${CORTEX_PORT:-18120}
UPSTREAM_PORT=${UPSTREAM_PORT:-18121}
FREE_PORT=${FREE_PORT:-18122}
PROXY_PORT=${PROXY_PORT:-18123}
NGINX_PORT=${NGINX_PORT:-18124}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
. bench/lib.sh
ensure_nginx

build_cortex BareHummingbird

PORT=$UPSTREAM_PORT "$BIN/BareHummingbird" >"$WORK/upstream.log" 2>&1 &
wait_for "http://127.0.0.1:$UPSTREAM_PORT/v1/models"
PORT=$PROXY_PORT UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" "$BIN/BareHummingbird" >"$WORK/proxy.log" 2>&1 &
start_nginx "
  upstream llm { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://llm; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_for "http://127.0.0.1:$NGINX_PORT/v1/models"
wait_for "http://127.0.0.1:$PROXY_PORT/health"
# Everything on: the demo key, a rate limit far above the load, per-token prices, access logs.
start_cortex "$CORTEX_PORT" "" \
  LOG_LEVEL=info DEMO_CREDITS=1000000000 RATE_LIMIT_RPS=1000000 \
  LLM_PRIMARY_URL="http://127.0.0.1:$UPSTREAM_PORT" LLM_PRIMARY_KIND=openai LLM_PRIMARY_MODEL=fake-model \
  LLM_DEPLOYMENT=fake-model LLM_PRICE_INPUT_PER_1K=0.001 LLM_PRICE_OUTPUT_PER_1K=0.002 PRIMARY_POLL_INTERVAL_S=0.05
start_cortex "$FREE_PORT" "" \
  LOG_LEVEL=info RATE_LIMIT_RPS=1000000 \
  LLM_PRIMARY_URL="http://127.0.0.1:$UPSTREAM_PORT" LLM_PRIMARY_KIND=openai LLM_PRIMARY_MODEL=fake-model \
  LLM_DEPLOYMENT=fake-model PRIMARY_POLL_INTERVAL_S=0.05
for port in "$CORTEX_PORT" "$FREE_PORT"; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/api/status/summary" | grep -q '"path":"primary"' && break
    sleep 0.05
  done
done
charged=$(curl -fs -D - -o /dev/null -H 'X-API-Key: demo-api-key-123' -H 'Content-Type: application/json' \
  -d '{"model":"fake-model","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}' \
  "http://127.0.0.1:$CORTEX_PORT/v1/chat/completions" | awk -F': ' 'tolower($1)=="x-credits-charged" {print $2}' | tr -d '\r')
echo "   one chat is billed: X-Credits-Charged $charged (12 prompt tokens at 0.001/1k, 5 generated at 0.002/1k)"

compare() { # connections
  local saved=$CONNECTIONS
  CONNECTIONS=$1
  echo "== POST /v1/chat/completions: $ROUNDS rounds of ${DURATION}s at $1 connection(s)"
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
      run_wrk "direct-$1" "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "cortex-$1" "http://127.0.0.1:$CORTEX_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "unbilled-$1" "http://127.0.0.1:$FREE_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "bare-proxy-$1" "http://127.0.0.1:$PROXY_PORT/proxy/v1/chat/completions" bench/chat.lua
      run_wrk "nginx-$1" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" bench/chat.lua
    else
      run_wrk "nginx-$1" "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "bare-proxy-$1" "http://127.0.0.1:$PROXY_PORT/proxy/v1/chat/completions" bench/chat.lua
      run_wrk "unbilled-$1" "http://127.0.0.1:$FREE_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "cortex-$1" "http://127.0.0.1:$CORTEX_PORT/v1/chat/completions" bench/chat.lua
      run_wrk "direct-$1" "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" bench/chat.lua
    fi
  done
  CONNECTIONS=$saved
}
compare "$CONNECTIONS"
compare 1

echo "== time to first token, $TTFT_REQUESTS streamed requests each, one after another"
ttft_direct=$(python3 bench/ttft.py "127.0.0.1:$UPSTREAM_PORT" "$TTFT_REQUESTS")
ttft_cortex=$(python3 bench/ttft.py "127.0.0.1:$CORTEX_PORT" "$TTFT_REQUESTS")
ttft_free=$(python3 bench/ttft.py "127.0.0.1:$FREE_PORT" "$TTFT_REQUESTS")
ttft_proxy=$(python3 bench/ttft.py "127.0.0.1:$PROXY_PORT" "$TTFT_REQUESTS" /proxy/v1/chat/completions)
echo "   direct p50/p99 ms: $ttft_direct   through cortex: $ttft_cortex   unbilled: $ttft_free   bare proxy: $ttft_proxy"

echo
echo "== results (medians of $ROUNDS rounds)"
for c in "$CONNECTIONS" 1; do
  dr=$(median "direct-$c" 1); cr=$(median "cortex-$c" 1)
  d99=$(median "direct-$c" 2); c99=$(median "cortex-$c" 2)
  d50=$(median "direct-$c" 3); c50=$(median "cortex-$c" 3)
  awk -v c="$c" -v dr="$dr" -v cr="$cr" -v d50="$d50" -v c50="$c50" -v d99="$d99" -v c99="$c99" 'BEGIN {
    printf "chat at %2d conn: direct %7.0f req/s p50 %.3f p99 %.3f ms | cortex %7.0f req/s p50 %.3f p99 %.3f ms | cortex adds p50 %+.3f ms, p99 %+.3f ms, throughput ratio %.2f\n",
      c, dr, d50, d99, cr, c50, c99, c50 - d50, c99 - d99, cr / dr }'
  echo "   CPU per request: upstream $(median "direct-$c" 4) us, cortex billed $(median "cortex-$c" 4) us, unbilled $(median "unbilled-$c" 4) us (the proxy's own, not the upstream's)"
  ur=$(median "unbilled-$c" 1); u99=$(median "unbilled-$c" 2); u50=$(median "unbilled-$c" 3)
  awk -v c="$c" -v dr="$dr" -v ur="$ur" -v d50="$d50" -v u50="$u50" -v d99="$d99" -v u99="$u99" 'BEGIN {
    printf "   unbilled %2d conn: cortex %7.0f req/s p50 %.3f p99 %.3f ms | adds p50 %+.3f ms, p99 %+.3f ms, throughput ratio %.2f\n",
      c, ur, u50, u99, u50 - d50, u99 - d99, ur / dr }'
  pr=$(median "bare-proxy-$c" 1); p99=$(median "bare-proxy-$c" 2); p50=$(median "bare-proxy-$c" 3)
  awk -v c="$c" -v dr="$dr" -v pr="$pr" -v d50="$d50" -v p50="$p50" -v d99="$d99" -v p99="$p99" -v cpu="$(median "bare-proxy-$c" 4)" 'BEGIN {
    printf "   floor, bare Hummingbird + AsyncHTTPClient proxy %2d conn: %7.0f req/s p50 %.3f p99 %.3f ms | adds p50 %+.3f ms, p99 %+.3f ms; CPU %d us/req\n",
      c, pr, p50, p99, p50 - d50, p99 - d99, cpu }'
  nr=$(median "nginx-$c" 1); n99=$(median "nginx-$c" 2); n50=$(median "nginx-$c" 3)
  awk -v c="$c" -v nr="$nr" -v ur="$ur" -v cr="$cr" -v d50="$d50" -v n50="$n50" -v u50="$u50" -v d99="$d99" -v n99="$n99" -v cpu="$(median "nginx-$c" 4)" 'BEGIN {
    printf "   floor, nginx reverse proxy %2d conn: %7.0f req/s p50 %.3f p99 %.3f ms | adds p50 %+.3f ms; CPU %d us/req\n", c, nr, n50, n99, n50 - d50, cpu
    printf "   unbilled / nginx requests/s %.1f%% (target >= 70%%); billed / unbilled %.1f%% (target >= 85%%); unbilled adds p50 %+.3f ms over direct (target <= 0.15 ms at 1 conn)\n", 100 * ur / nr, 100 * cr / ur, u50 - d50 }'
done
read -r d50 d99 <<<"$ttft_direct"
read -r c50 c99 <<<"$ttft_cortex"
read -r u50 u99 <<<"$ttft_free"
read -r p50 p99 <<<"$ttft_proxy"
awk -v d50="$d50" -v c50="$c50" -v d99="$d99" -v c99="$c99" -v u50="$u50" -v p50="$p50" 'BEGIN {
  printf "time to first token: direct p50 %.3f p99 %.3f ms | cortex p50 %.3f p99 %.3f ms | streaming adds p50 %+.3f ms (target <= 0.3 ms billed); unbilled adds %+.3f ms; the bare proxy (floor) adds %+.3f ms\n",
    d50, d99, c50, c99, c50 - d50, u50 - d50, p50 - d50 }'
balance=$(curl -fs -H 'X-API-Key: demo-api-key-123' "http://127.0.0.1:$CORTEX_PORT/me" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["balance"], d["held"])')
echo "demo balance and held after the run: $balance"
