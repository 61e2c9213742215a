#!/usr/bin/env bash
# The C libraries Cortex decodes images with (POST /v1/infer): libpng and libjpeg-turbo's
# TurboJPEG API, from Debian. Building Cortex needs their headers, so `make run` and `make test`
# run this first; it does nothing when they are there.
set -euo pipefail
missing=()
[ -f /usr/include/png.h ] || missing+=(libpng-dev)
[ -f /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
fi
