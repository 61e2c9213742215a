#!/usr/bin/env bash
# A quick look at a running Cortex (make run in another terminal): scores a lead, classifies a
# digit, and prints both answers. Exits non-zero when either request fails.
#
#   scripts/quick_test.sh                              # http://127.0.0.1:8000 with the demo key
#   CORTEX_URL=https://cortex.example.com API_KEY=ctx_... scripts/quick_test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URL=${CORTEX_URL:-http://127.0.0.1:8000}
KEY=${API_KEY:-demo-api-key-123}

echo "== POST $URL/api/v1/score (one lead)"
curl -fsS "$URL/api/v1/score" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"features":{"pages_viewed":12,"email_opens":3,"demo_requested":1,"company_size":120}}'
echo

echo "== POST $URL/v1/infer (models/digits/digit3_0.png)"
curl -fsS "$URL/v1/infer" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d "{\"image_b64\": \"$(base64 -w0 models/digits/digit3_0.png)\"}"
echo
