#!/usr/bin/env bash
# Two builds of Cortex side by side: what a change costs on the routes every request takes.
#
#   bench/compare.sh OLD_BINARY [NEW_BINARY]
#
# NEW_BINARY defaults to this tree's release build. Both serve the bundled models on SQLite
# (unbilled, no rate limit); for GET /health, POST /api/v1/score (one lead) and
# POST /v2/models/lead-scoring/infer (one row) each is measured ROUNDS times, alternating which
# goes first, and the medians of requests/s, p99 and CPU per request are compared. Make the old
# build from a revision with:
#   git worktree add /tmp/old REV && (cd /tmp/old && swift build -c release --product cortex)
#
# Environment: DURATION (s per wrk run, default 5), ROUNDS (default 5), CONNECTIONS (default 32);
# SERVER_ENV, settings both servers get, e.g. billed on SQLite:
#   SERVER_ENV="MODEL_PRICES=lead-scoring=0.000001 DEMO_CREDITS=1000000000" bench/compare.sh OLD
# OLD_ENV and NEW_ENV, settings for one side only: one build against itself with a setting on,
# The LLM gateway against bench/BareHummingbird's fake upstream:
#   PORT=18121 .build/release/BareHummingbird &
#   SERVER_ENV="LLM_PRIMARY_URL=http://127.0.0.1:18121 LLM_PRIMARY_KIND=openai LLM_PRIMARY_MODEL=fake-model" \
#     ROUTES=chat bench/compare.sh /tmp/old/.build/release/cortex .build/release/cortex
# e.g. the A/B split's variant step on POST /v1/infer (ROUTES picks the routes; digit is
# /v1/infer with a bundled 8x8 PNG, which needs ONNX Runtime, scripts/onnxruntime.sh install):
#   NEW_ENV="AB_WEIGHT_B=1" ROUTES=digit bench/compare.sh .build/release/cortex .build/release/cortex
# or shadow traffic at 100% against none, at one connection (the primary's p50), and what one
# request naming vB costs (digit-vB), the floor a copy is held to:
#   CONNECTIONS=1 NEW_ENV="SHADOW_ENABLED=true" ROUTES="digit digit-vB" bench/compare.sh .build/release/cortex .build/release/cortex
# or a named endpoint (traffic.endpoints) split 50/50 against one model of the same name
# (scorer is POST /v2/models/scorer/infer, one row):
#   OLD_ENV=CORTEX_CONFIG=bench/scorer-one.yaml NEW_ENV=CORTEX_CONFIG=bench/scorer-split.yaml ROUTES=scorer \
#     bench/compare.sh .build/release/cortex .build/release/cortex
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

OLD=${1:?usage: bench/compare.sh OLD_BINARY [NEW_BINARY]}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
OLD_PORT=18090
NEW_PORT=18091
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
. bench/lib.sh

if [ -n "${2:-}" ]; then NEW=$2; else build_cortex; NEW="$BIN/cortex"; fi
for side in old new; do
  binary=$OLD port=$OLD_PORT
  [ "$side" = new ] && binary=$NEW port=$NEW_PORT
  # shellcheck disable=SC2086 # SERVER_ENV is a list of NAME=VALUE words
  side_env=${OLD_ENV:-}
  [ "$side" = new ] && side_env=${NEW_ENV:-}
  env HOST=127.0.0.1 PORT="$port" DATABASE_URL="sqlite:$WORK/$side.db" LOG_LEVEL=warning ${SERVER_ENV:-} $side_env "$binary" serve >"$WORK/$side.log" 2>&1 &
  wait_for "http://127.0.0.1:$port/ready"
done

ROUTES=${ROUTES:-health score infer}
# POST /v1/infer with the bundled 8x8 digit, as the A/B image service's clients send it.
cat >"$WORK/digit.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "demo-api-key-123"
wrk.body = '{"image_b64":"$(base64 -w0 models/digits/digit3_0.png)","img_size":8}'
LUA
sed 's/"img_size":8}/"img_size":8,"model":"vB"}/' "$WORK/digit.lua" >"$WORK/digit-vB.lua"
for route in $ROUTES; do
  case $route in
    health) path=/health lua= ;;
    score) path=/api/v1/score lua=bench/score.lua ;;
    infer) path=/v2/models/lead-scoring/infer lua=bench/infer.lua ;;
    scorer) path=/v2/models/scorer/infer lua=bench/infer.lua ;;
    digit) path=/v1/infer lua=$WORK/digit.lua ;;
    digit-vB) path=/v1/infer lua=$WORK/digit-vB.lua ;;
    # A chat completion through the LLM gateway; give both builds an upstream in SERVER_ENV.
    chat) path=/v1/chat/completions lua=bench/chat.lua ;;
  esac
  echo "== $route: $ROUNDS rounds of ${DURATION}s at $CONNECTIONS connections"
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
      run_wrk "old-$route" "http://127.0.0.1:$OLD_PORT$path" $lua
      run_wrk "new-$route" "http://127.0.0.1:$NEW_PORT$path" $lua
    else
      run_wrk "new-$route" "http://127.0.0.1:$NEW_PORT$path" $lua
      run_wrk "old-$route" "http://127.0.0.1:$OLD_PORT$path" $lua
    fi
  done
done

echo
echo "== medians: new / old"
for route in $ROUTES; do
  awk -v r="$route" -v nr="$(median "new-$route" 1)" -v or="$(median "old-$route" 1)" \
    -v np="$(median "new-$route" 2)" -v op="$(median "old-$route" 2)" \
    -v nc="$(median "new-$route" 4)" -v oc="$(median "old-$route" 4)" \
    -v n5="$(median "new-$route" 3)" -v o5="$(median "old-$route" 3)" \
    'BEGIN {printf "%-7s requests/s %6.1f%% (%.0f / %.0f)   p50 %.3f / %.3f ms   p99 %.2f / %.2f ms   cpu %d / %d us/req\n", r, 100*nr/or, nr, or, n5, o5, np, op, nc, oc}'
done
