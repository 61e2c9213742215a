#!/usr/bin/env bash
# ONNX benchmark, all in one run on one machine:
#
# 1. Cortex's own cost per request at one connection: Cortex's p50 for one 8x8 image on vA
#    (POST /v2/models/vA/infer, JSON) minus bare Hummingbird's p50 echoing the same body, minus
#    the bare ONNX Runtime Run p50 for that input (`cortex models bench`). Target <= 50 us.
#    The same formula on bare Hummingbird echoing and running vA once per request (no JSON,
#    validation, metrics or logs) shows the floor: ONNX Runtime runs slower between requests,
#    with its caches cold, than in a tight loop.
# 2. Dynamic batching: requests/s on vA at BATCH_CONNECTIONS connections with the bundled
#    manifest (batching on) against a copy with batching off. Target >= 2x.
#    The same on a wide MLP (bench/wide_mlp.py: vA's shape with WIDE_HIDDEN units per layer,
#    generated here, never committed) shows what the batcher gives when the model's batch-1 cost
#    dominates the HTTP path, as it does not for vA.
# 3. Memory: RSS after 10,000 requests and after REQUESTS requests to vA. Target within 10%.
#
# Needs ONNX Runtime in .venv (scripts/onnxruntime.sh install; this script runs it).
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 3), BATCH_CONNECTIONS
# (default 64), WIDE_HIDDEN (default 1024; 0 skips the wide MLP), REQUESTS (default 1000000),
# SKIP_RSS=1 to skip the soak.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-64}
WIDE_HIDDEN=${WIDE_HIDDEN:-1024}
WIDE_PORT=${WIDE_PORT:-18113}
WIDE_UNBATCHED_PORT=${WIDE_UNBATCHED_PORT:-18114}
REQUESTS=${REQUESTS:-1000000}
CORTEX_PORT=${CORTEX_PORT:-18110}
UNBATCHED_PORT=${UNBATCHED_PORT:-18111}
BARE_PORT=${BARE_PORT:-18112}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
CONNECTIONS=1
. bench/lib.sh

scripts/onnxruntime.sh install >/dev/null
build_cortex BareHummingbird

# vA with batching off: the same file, a manifest without `batching`.
mkdir -p "$WORK/unbatched"
cp models/vA.onnx "$WORK/unbatched/vA.onnx"
sed '/^batching:/,$d' models/vA.yaml >"$WORK/unbatched/vA.yaml"

start_cortex "$CORTEX_PORT" ""
start_cortex "$UNBATCHED_PORT" "" MODEL_VA_PATH="$WORK/unbatched/vA.onnx"
for port in "$CORTEX_PORT" "$UNBATCHED_PORT"; do wait_for "http://127.0.0.1:$port/v2/models/vA/ready"; done
PORT=$BARE_PORT ONNX_MODEL=models/vA.onnx "$BIN/BareHummingbird" >"$WORK/bare.log" 2>&1 &
wait_for "http://127.0.0.1:$BARE_PORT/health"

echo "== 1. one connection, one image: $ROUNDS rounds of ${DURATION}s"
for round in $(seq 1 "$ROUNDS"); do
  # Batching waits for nothing at one connection; the unbatched server is the plain path.
  run_wrk bare "http://127.0.0.1:$BARE_PORT/v2/models/vA/infer" bench/image.lua
  run_wrk bare-onnx "http://127.0.0.1:$BARE_PORT/onnx/infer" bench/image.lua
  run_wrk cortex "http://127.0.0.1:$UNBATCHED_PORT/v2/models/vA/infer" bench/image.lua
  run_wrk batched "http://127.0.0.1:$CORTEX_PORT/v2/models/vA/infer" bench/image.lua
done
run_p50_us=$("$BIN/cortex" models bench models/vA.onnx --runs 20000 | awk '/run_p50_us/ {print $2}')

# ROUNDS rounds of vA requests to a server with batching on and one with it off, alternating
# which goes first; results under PREFIX-on and PREFIX-off.
on_off_rounds() { # prefix on-port off-port
  local round name port order
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for name in $order; do
      if [ "$name" = on ]; then port=$2; else port=$3; fi
      run_wrk "$1-$name" "http://127.0.0.1:$port/v2/models/vA/infer" bench/image.lua
    done
  done
}

echo "== 2. batching on vs off at $BATCH_CONNECTIONS connections: $ROUNDS rounds of ${DURATION}s"
CONNECTIONS=$BATCH_CONNECTIONS
on_off_rounds batching "$CORTEX_PORT" "$UNBATCHED_PORT"
rows_per_execution() { # port
  curl -fs "http://127.0.0.1:$1/v2/models/vA/stats" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["model_stats"][0]; print(s["inference_count"], s["execution_count"])'
}
rows=$(rows_per_execution "$CORTEX_PORT")
if [ "$WIDE_HIDDEN" -gt 0 ]; then
  echo "== 2b. the same on a wide MLP (64 -> $WIDE_HIDDEN -> $WIDE_HIDDEN -> 10)"
  # The wide MLP in vA's place: the bundled manifest (batching on) and the copy without batching,
  # started only now and stopped after, so they run during no other measurement.
  .venv/bin/python -c 'import onnx' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check onnx==1.23.2
  mkdir -p "$WORK/wide-on" "$WORK/wide-off"
  .venv/bin/python bench/wide_mlp.py "$WORK/wide-on/vA.onnx" "$WIDE_HIDDEN"
  cp "$WORK/wide-on/vA.onnx" "$WORK/wide-off/vA.onnx"
  cp models/vA.yaml "$WORK/wide-on/vA.yaml"
  cp "$WORK/unbatched/vA.yaml" "$WORK/wide-off/vA.yaml"
  start_cortex "$WIDE_PORT" "" MODEL_VA_PATH="$WORK/wide-on/vA.onnx"
  start_cortex "$WIDE_UNBATCHED_PORT" "" MODEL_VA_PATH="$WORK/wide-off/vA.onnx"
  for port in "$WIDE_PORT" "$WIDE_UNBATCHED_PORT"; do wait_for "http://127.0.0.1:$port/v2/models/vA/ready"; done
  on_off_rounds wide "$WIDE_PORT" "$WIDE_UNBATCHED_PORT"
  wide_rows=$(rows_per_execution "$WIDE_PORT")
  kill "$(pid_on_port "$WIDE_PORT")" "$(pid_on_port "$WIDE_UNBATCHED_PORT")"
  wide_run_p50_us=$("$BIN/cortex" models bench "$WORK/wide-off/vA.onnx" --runs 2000 | awk '/run_p50_us/ {print $2}')
fi

echo
echo "== figures (medians)"
awk -v c="$(median cortex 3)" -v b="$(median bare 3)" -v r="$run_p50_us" -v batched="$(median batched 3)" 'BEGIN {
  printf "p50 at 1 connection: cortex %.1f us, bare Hummingbird echo %.1f us, ONNX Runtime Run %.1f us\n", c*1000, b*1000, r
  printf "Cortex own cost per request         %.1f us   target <= 50 us\n", c*1000 - b*1000 - r
  printf "  (with the dynamic batcher on the path: %.1f us)\n", batched*1000 - b*1000 - r
}'
awk -v f="$(median bare-onnx 3)" -v b="$(median bare 3)" -v r="$run_p50_us" -v fc="$(median bare-onnx 4)" 'BEGIN {
  printf "floor, bare Hummingbird echo + one Run of vA in the server: p50 %.1f us, CPU %d us; its own cost by the same formula %.1f us\n", f*1000, fc, f*1000 - b*1000 - r
}'
awk -v c="$(median cortex 4)" -v b="$(median bare 4)" -v r="$run_p50_us" 'BEGIN {
  printf "CPU per request at 1 connection: cortex %d us, bare echo %d us; beyond the echo and Run: %.0f us\n", c, b, c - b - r
}'
awk -v on="$(median batching-on 1)" -v off="$(median batching-off 1)" \
  'BEGIN {printf "batching on / off requests/s         %.2fx (%.0f / %.0f req/s)   target >= 2x\n", on/off, on, off}'
echo "p99 batching on / off                $(median batching-on 2) ms / $(median batching-off 2) ms"
echo "$rows" | awk '{printf "rows per execution with batching     %.1f (%d rows in %d executions, whole run)\n", $1/$2, $1, $2}'
if [ "$WIDE_HIDDEN" -gt 0 ]; then
  awk -v on="$(median wide-on 1)" -v off="$(median wide-off 1)" -v run="$wide_run_p50_us" -v h="$WIDE_HIDDEN" \
    'BEGIN {printf "wide MLP (hidden %d, Run %.0f us alone): batching on / off %.2fx (%.0f / %.0f req/s)\n", h, run, on/off, on, off}'
  echo "$wide_rows" | awk '{printf "  rows per execution %.1f; p99 on / off ", $1/$2}'
  echo "$(median wide-on 2) ms / $(median wide-off 2) ms; CPU per request on / off $(median wide-on 4) / $(median wide-off 4) us"
fi

if [ "${SKIP_RSS:-0}" != 1 ]; then
  echo "== 3. memory over $REQUESTS requests to vA at 32 connections"
  CONNECTIONS=32
  PID=$(pid_on_port "$CORTEX_PORT")
  DURATION=2 run_wrk soak-warm "http://127.0.0.1:$CORTEX_PORT/v2/models/vA/infer" bench/image.lua >/dev/null
  before=$(rss_kb "$PID")
  done_requests=0
  while [ "$done_requests" -lt "$REQUESTS" ]; do
    out=$(wrk -t2 -c32 -d10s -s bench/image.lua "http://127.0.0.1:$CORTEX_PORT/v2/models/vA/infer")
    done_requests=$((done_requests + $(echo "$out" | awk '/requests in/ {print $1}')))
  done
  after=$(rss_kb "$PID")
  awk -v a="$after" -v b="$before" -v n="$done_requests" \
    'BEGIN {printf "RSS after warm-up %d KiB, after %d more requests %d KiB: %+.1f%%   target within 10%%\n", b, n, a, 100*(a-b)/b}'
fi
