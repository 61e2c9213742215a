#!/usr/bin/env bash
# A throw-away Redis for the tests, on a loopback port, in a temporary folder.
#
#   scripts/redis.sh install # installs redis-server from Debian if missing (the tests start their own)
#   scripts/redis.sh start   # prints: export CORTEX_TEST_REDIS_URL=redis://127.0.0.1:PORT ...
#   scripts/redis.sh stop DIR
#
# Installs redis-server from Debian when it is missing. Nothing is persisted.
set -euo pipefail

install() {
    if ! command -v redis-server >/dev/null; then
        echo "== installing Redis from Debian" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
    fi
}

case "${1:-}" in
install)
    install
    ;;
start)
    install
    DIR=$(mktemp -d /tmp/cortex-redis.XXXXXX)
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
        --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" >/dev/null
    for _ in $(seq 1 100); do
        [ -s "$DIR/redis.pid" ] && redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    echo "export CORTEX_TEST_REDIS_URL=redis://127.0.0.1:$PORT"
    echo "export CORTEX_TEST_REDIS_DIR=$DIR"
    ;;
stop)
    DIR=${2:?usage: scripts/redis.sh stop DIR}
    [ -s "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
    rm -rf "$DIR"
    ;;
*)
    echo "usage: scripts/redis.sh install | start | stop DIR" >&2
    exit 2
    ;;
esac
