#!/usr/bin/env bash
# Model lifecycle under load: promotions and repository unload/load cycles while requests run.
#
# vA and vB are a wide MLP (bench/wide_mlp.py, WIDE_HIDDEN units per layer, generated here and
# never committed), so each session holds tens of MiB and a session that is never freed shows in
# the process's RSS. While wrk sends requests to vA at CONNECTIONS connections:
#
# 1. CYCLES promotions (`POST /admin/promote`: vB's file loaded afresh as vA, the old vA freed
#    when its last request finishes);
# 2. CYCLES unload/load cycles of vB (`POST /v2/repository/models/vB/unload`, then `/load`).
#
# It prints RSS before, after the first cycle and after the last of each phase (targets: the last
# within 10% of the first, i.e. no session kept per cycle), the answers that were not 200 during
# the phase (target: 0), and the admin calls that failed (target: 0).
#
# Environment: WIDE_HIDDEN (default 2048), CYCLES (default 20), CONNECTIONS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

WIDE_HIDDEN=${WIDE_HIDDEN:-2048}
CYCLES=${CYCLES:-20}
CONNECTIONS=${CONNECTIONS:-8}
PORT=${MODELS_PORT:-18130}
TOKEN=bench-admin-token-0123456789abcdef
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
DURATION=2
. bench/lib.sh

scripts/onnxruntime.sh install >/dev/null
.venv/bin/python -c 'import onnx' 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check onnx==1.23.2
build_cortex

mkdir -p "$WORK/models"
.venv/bin/python bench/wide_mlp.py "$WORK/models/vA.onnx" "$WIDE_HIDDEN"
cp "$WORK/models/vA.onnx" "$WORK/models/vB.onnx"
cp models/vA.yaml "$WORK/models/vA.yaml"
cp models/vA.yaml "$WORK/models/vB.yaml"
echo "== wide MLP, hidden $WIDE_HIDDEN: $(du -m "$WORK/models/vA.onnx" | cut -f1) MB per file"

start_cortex "$PORT" "" ADMIN_TOKEN="$TOKEN" MODEL_VA_PATH="$WORK/models/vA.onnx" MODEL_VB_PATH="$WORK/models/vB.onnx" \
  MODEL_REPOSITORY="$WORK/models" \
  AB_WEIGHT_A=1 AB_WEIGHT_B=0
PID=$(pid_on_port "$PORT")
URL="http://127.0.0.1:$PORT"
wait_for "$URL/v2/models/vB/ready"
run_wrk warm "$URL/v2/models/vA/infer" bench/image.lua >/dev/null

admin() { # path: prints the status
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" "$URL$1"
}

# Runs wrk on vA for as long as the phase takes (it is stopped at the end), the phase's admin
# calls in the foreground; prints RSS after each cycle into $WORK/NAME.rss.
phase() { # name path...
  local name=$1 cycle path status failures=0
  shift
  wrk -t2 -c"$CONNECTIONS" -d600s -s bench/image.lua "$URL/v2/models/vA/infer" >"$WORK/$name.wrk" 2>&1 &
  local load=$!
  sleep 1
  rss_kb "$PID" >"$WORK/$name.rss"
  for cycle in $(seq 1 "$CYCLES"); do
    for path in "$@"; do
      status=$(admin "$path")
      [ "$status" = 200 ] || failures=$((failures + 1))
    done
    rss_kb "$PID" >>"$WORK/$name.rss"
  done
  sleep 1
  kill -INT "$load"
  wait "$load" 2>/dev/null || true
  local requests non200
  requests=$(awk '/requests in/ {print $1}' "$WORK/$name.wrk")
  non200=$(awk '/Non-2xx/ {print $4}' "$WORK/$name.wrk")
  awk -v name="$name" -v n="$requests" -v bad="${non200:-0}" -v failed="$failures" -v cycles="$CYCLES" '
    {rss[NR] = $1}
    END {
      printf "%-9s RSS before %d MiB, after cycle 1 %d MiB, after cycle %d %d MiB (%+.1f%% from cycle 1)\n",
        name, rss[1] / 1024, rss[2] / 1024, cycles, rss[NR] / 1024, (rss[NR] - rss[2]) * 100 / rss[2]
      printf "          %d requests to vA meanwhile, %d not 200; %d admin calls failed\n", n, bad, failed
      if (ENVIRON["VERBOSE"] != "") { for (i = 1; i <= NR; i++) printf "%d ", rss[i] / 1024; print "" }
    }' "$WORK/$name.rss"
}

echo "== $CYCLES cycles each, wrk on vA at $CONNECTIONS connections"
phase promote /admin/promote
phase unload /v2/repository/models/vB/unload /v2/repository/models/vB/load
