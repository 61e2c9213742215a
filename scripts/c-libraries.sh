#!/usr/bin/env bash
# The C libraries Cortex links, from Debian: SQLite (the embedded database and the ledger), and
# libpng and libjpeg-turbo's TurboJPEG API, which decode images (POST /v1/infer). Building Cortex
# needs their headers, so `make run` and `make test` run this first; it does nothing when they are there.
set -euo pipefail
missing=()
[ -f /usr/include/png.h ] || missing+=(libpng-dev)
[ -f /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
fi
