#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests, on a loopback port, in a temporary folder.
#
#   scripts/postgres.sh start        # prints: export CORTEX_TEST_POSTGRES_URL=postgres://...
#   scripts/postgres.sh restart DIR  # a fast restart (clients disconnected), same port, for fault tests
#   scripts/postgres.sh stop DIR
#
# Installs PostgreSQL from Debian when no server binaries are found. The cluster runs as the
# `postgres` system user when started by root (initdb refuses root), trusts loopback
# connections, and is removed by `stop`.
set -euo pipefail

find_bin() {
    local candidate
    for candidate in /usr/lib/postgresql/*/bin; do
        [ -x "$candidate/initdb" ] && { echo "$candidate"; return 0; }
    done
    command -v initdb >/dev/null && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
    return 1
}

run_as() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    if ! BIN=$(find_bin); then
        echo "== installing PostgreSQL from Debian" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
        BIN=$(find_bin)
    fi
    DIR=$(mktemp -d /tmp/cortex-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    run_as "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync >/dev/null
    run_as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
    echo "$DIR" > "$DIR/dir"
    echo "export CORTEX_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/postgres?sslmode=disable"
    echo "export CORTEX_TEST_POSTGRES_DIR=$DIR"
    ;;
restart)
    DIR=${2:?usage: scripts/postgres.sh restart DIR}
    BIN=$(find_bin)
    # pg_ctl restart keeps the options the cluster was started with (postmaster.opts).
    run_as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -m fast -w restart >/dev/null
    ;;
stop)
    DIR=${2:?usage: scripts/postgres.sh stop DIR}
    BIN=$(find_bin)
    run_as "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
    ;;
*)
    echo "usage: scripts/postgres.sh start | restart DIR | stop DIR" >&2
    exit 2
    ;;
esac
