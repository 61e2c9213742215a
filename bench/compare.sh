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
  env HOST=127.0.0.1 PORT="$port" DATABASE_URL="sqlite:$WORK/$side.db" LOG_LEVEL=warning ${SERVER_ENV:-} "$binary" serve >"$WORK/$side.log" 2>&1 &
  wait_for "http://127.0.0.1:$port/ready"
done

for route in health score infer; do
  case $route in
    health) path=/health lua= ;;
    score) path=/api/v1/score lua=bench/score.lua ;;
    infer) path=/v2/models/lead-scoring/infer lua=bench/infer.lua ;;
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
for route in health score infer; do
  awk -v r="$route" -v nr="$(median "new-$route" 1)" -v or="$(median "old-$route" 1)" \
    -v np="$(median "new-$route" 2)" -v op="$(median "old-$route" 2)" \
    -v nc="$(median "new-$route" 4)" -v oc="$(median "old-$route" 4)" \
    'BEGIN {printf "%-7s requests/s %6.1f%% (%.0f / %.0f)   p99 %.2f / %.2f ms   cpu %d / %d us/req\n", r, 100*nr/or, nr, or, np, op, nc, oc}'
done
