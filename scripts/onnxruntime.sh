#!/usr/bin/env bash
# ONNX Runtime for Cortex, from PyPI, in the project's virtualenv (.venv):
#   scripts/onnxruntime.sh install   create .venv if needed and install scripts/requirements.txt
#                                    (onnxruntime, onnx for generated test models, and the Python clients the tests drive);
#                                    prints ORT_DYLIB_PATH=<the library Cortex will open>
#   scripts/onnxruntime.sh path      print the library's path only
# Cortex finds the library in .venv by itself when started from the project folder; elsewhere
# set ORT_DYLIB_PATH to the printed path.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

library() {
  ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | sort | tail -1
}

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      echo "installing python3-venv (Debian package)" >&2
      (apt-get update -qq && apt-get install -y -qq python3-venv) >/dev/null
      rm -rf "$VENV"
      python3 -m venv "$VENV"
    fi
  fi
  # Nothing to do when the pinned onnxruntime and the clients are already there.
  local pinned
  pinned=$(awk -F'==' '/^onnxruntime==/ {print $2}' scripts/requirements.txt)
  if ! "$VENV/bin/python" -c "import onnxruntime, onnx, tritonclient.http, numpy, openai, tokenizers, sys; sys.exit(onnxruntime.__version__ != '$pinned')" >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt >&2
  fi
  [ -n "$(library)" ] || { echo "onnxruntime installed, but no libonnxruntime.so found in $VENV" >&2; exit 1; }
  echo "ORT_DYLIB_PATH=$(pwd)/$(library)"
}

case ${1:-install} in
  install) install ;;
  path) library ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
