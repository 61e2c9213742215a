#!/usr/bin/env bash
# Foundation benchmark: Cortex against bare Hummingbird (bench/BareHummingbird) in the same run.
#
# Prints, for GET /health and POST /v2/models/lead-scoring/infer (one row):
#   requests/s and p99 of each server at CONNECTIONS connections, and Cortex's ratio to the baseline;
# then time to ready, idle RSS, and RSS after 10,000 and after REQUESTS requests.
#
# These machines are noisy, so each pair is measured ROUNDS times, alternating which server goes
# first, and the medians are compared.
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), CONNECTIONS (default 32),
# REQUESTS (default 1000000), SKIP_RSS=1 to skip the long RSS soak.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
REQUESTS=${REQUESTS:-1000000}
CORTEX_PORT=${CORTEX_PORT:-18080}
BARE_PORT=${BARE_PORT:-18081}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
. bench/lib.sh

build_cortex BareHummingbird

compare() { # label baseline-name cortex-name url [lua]
  echo "== $1: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
      run_wrk "$2" "http://127.0.0.1:$BARE_PORT$4" ${5:-}
      run_wrk "$3" "http://127.0.0.1:$CORTEX_PORT$4" ${5:-}
    else
      run_wrk "$3" "http://127.0.0.1:$CORTEX_PORT$4" ${5:-}
      run_wrk "$2" "http://127.0.0.1:$BARE_PORT$4" ${5:-}
    fi
  done
}

echo "== starting servers (127.0.0.1:$CORTEX_PORT cortex, :$BARE_PORT bare Hummingbird)"
start_ns=$(date +%s%N)
HOST=127.0.0.1 PORT=$CORTEX_PORT DATABASE_URL="sqlite:$WORK/cortex.db" "$BIN/cortex" serve >"$WORK/cortex.log" 2>&1 &
CORTEX_PID=$!
until curl -fs "http://127.0.0.1:$CORTEX_PORT/ready" >/dev/null 2>&1; do sleep 0.005; done
ready_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
sleep 1
idle_rss=$(rss_kb $CORTEX_PID)
PORT=$BARE_PORT "$BIN/BareHummingbird" >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
wait_for "http://127.0.0.1:$BARE_PORT/health"

compare "GET /health" bare-health cortex-health /health
compare "POST /v2/models/lead-scoring/infer, one row (baseline echoes the body)" bare-infer cortex-infer \
  /v2/models/lead-scoring/infer bench/infer.lua

ratio() { awk -v a="$(median "$1" 1)" -v b="$(median "$2" 1)" 'BEGIN {printf "%.1f%% (%.0f / %.0f req/s)", 100*a/b, a, b}'; }
echo
echo "== figures (medians)"
echo "health: cortex/bare requests/s      $(ratio cortex-health bare-health)   target >= 85%"
echo "infer:  cortex/bare-echo requests/s $(ratio cortex-infer bare-infer)   target >= 60%"
echo "infer:  p99 cortex / bare-echo      $(median cortex-infer 2) ms / $(median bare-infer 2) ms   target <= 5 ms"
echo "ready after start                   ${ready_ms} ms   target <= 1000 ms"
echo "idle RSS                            $((idle_rss / 1024)) MiB   target <= 60 MiB"

kill $BARE_PID 2>/dev/null || true

if [ "${SKIP_RSS:-0}" = 1 ]; then exit 0; fi
count() {
  curl -fs "http://127.0.0.1:$CORTEX_PORT/metrics" \
    | awk '/^http_requests_total\{.*route="\/v2\/models\/\{model\}\/infer"/ {s+=$2} END {printf "%d", s}'
}
echo
echo "== RSS soak: POST infer until $REQUESTS requests (restarting cortex for a clean count)"
kill $CORTEX_PID; wait $CORTEX_PID 2>/dev/null || true
HOST=127.0.0.1 PORT=$CORTEX_PORT DATABASE_URL="sqlite:$WORK/cortex.db" "$BIN/cortex" serve >/dev/null 2>&1 &
CORTEX_PID=$!
wait_for "http://127.0.0.1:$CORTEX_PORT/ready"
wrk -t1 -c4 -d1s -s bench/infer.lua "http://127.0.0.1:$CORTEX_PORT/v2/models/lead-scoring/infer" >/dev/null
while [ "$(count)" -lt 10000 ]; do
  wrk -t1 -c4 -d1s -s bench/infer.lua "http://127.0.0.1:$CORTEX_PORT/v2/models/lead-scoring/infer" >/dev/null
done
rss_10k=$(rss_kb $CORTEX_PID)
n10k=$(count)
deadline=$(( $(date +%s) + 600 ))
while [ "$(count)" -lt "$REQUESTS" ] && [ "$(date +%s)" -lt $deadline ]; do
  wrk -t2 -c"$CONNECTIONS" -d5s -s bench/infer.lua "http://127.0.0.1:$CORTEX_PORT/v2/models/lead-scoring/infer" >/dev/null
done
rss_end=$(rss_kb $CORTEX_PID)
nend=$(count)
echo "RSS after $n10k requests                  $((rss_10k / 1024)) MiB"
echo "RSS after $nend requests                  $((rss_end / 1024)) MiB"
awk -v a="$rss_10k" -v b="$rss_end" 'BEGIN {printf "RSS growth                                %.1f%%   (target within 10%%)\n", 100*(b-a)/a}'
