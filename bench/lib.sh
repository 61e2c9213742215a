# Shared by the bench scripts: wrk runs, medians, waiting for servers, RSS.
# Expects WORK (a scratch folder) and CONNECTIONS, DURATION to be set by the caller; THREADS
# (wrk threads) defaults to 2, and to 1 at one connection.

# Building Cortex needs the image libraries' headers.
"$(dirname "${BASH_SOURCE[0]}")/../scripts/c-libraries.sh"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)"
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

# nginx (Debian's nginx-light) for the proxy floors and the replicas' load balancer.
ensure_nginx() {
  command -v nginx >/dev/null && return 0
  echo "installing nginx (Debian package)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light) >/dev/null
}

# Starts nginx in the foreground (a background job) with the `http { ... }` block's contents
# CONFIG, its files in $WORK; sets NGINX_PID.
start_nginx() { # config
  cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $1
}
NGINX
  nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
}

wait_for() { # url
  for _ in $(seq 1 400); do
    if curl -fs "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.025
  done
  echo "timed out waiting for $1" >&2
  return 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# The process listening on loopback PORT.
pid_on_port() { # port
  ss -ltnp "sport = :$1" | awk -F'pid=' 'NR>1 {split($2,a,","); print a[1]}' | head -1
}
# CPU time (user + system, all threads) a process has used, in clock ticks; 0 when the process
# is unknown (ss shows other users' processes only to root), so the figure reads 0, not a failure.
cpu_ticks() { # pid
  if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi
}

# CPU ticks of every PostgreSQL process (the backends are children of the postmaster).
postgres_ticks() {
  local total=0 pid
  for pid in $(pgrep -u postgres postgres 2>/dev/null); do total=$((total + $(cpu_ticks "$pid"))); done
  echo "$total"
}
# The 200s a Cortex on PORT answered on POST /v2/models/{model}/infer, from its /metrics.
infer_200s() { # port
  curl -fs "http://127.0.0.1:$1/metrics" |
    awk '/^http_requests_total\{.*route="\/v2\/models\/\{model\}\/infer".*status="200"/ {s+=$2} END {printf "%d", s}'
}

# wrk prints "Requests/sec: N" and, with --latency, "99% Nms"; normalise p99 to milliseconds.
# Also measures the CPU the server on the URL's port spent per request (all its threads, user and
# system, from /proc): steadier on a noisy machine than latency, and what a request costs.
# Appends "rps p99 p50 cpu_us" to $WORK/NAME.results (columns 1, 2, 3, 4 for `median`).
run_wrk() { # name url [lua]
  local out threads=${THREADS:-2} port pid before after
  [ "$CONNECTIONS" -lt "$threads" ] && threads=$CONNECTIONS
  port=$(echo "$2" | sed -E 's#^https?://[^:/]+:([0-9]+).*#\1#')
  pid=$(pid_on_port "$port")
  before=$(cpu_ticks "$pid")
  if [ -n "${3:-}" ]; then
    out=$(wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$3" "$2")
  else
    out=$(wrk -t"$threads" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2")
  fi
  after=$(cpu_ticks "$pid")
  local rps p99 p50 errors requests cpu
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | latency_ms "99%")
  p50=$(echo "$out" | latency_ms "50%")
  errors=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  cpu=$(awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (n > 0 ? t * 1e6 / hz / n : 0)}')
  printf '  %-16s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   cpu %4d us/req%s\n' "$1" "$rps" "$p50" "$p99" "$cpu" "${errors:+   NON-2xx: $errors}"
  echo "$rps $p99 $p50 $cpu" >> "$WORK/$1.results"
}
# A percentile line of wrk --latency ("99%  1.23ms"), in milliseconds.
latency_ms() { # percentile
  awk -v p="$1" '$1==p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'
}
median() { # name column
  sort -n -k"$2" "$WORK/$1.results" | awk -v c="$2" '{v[NR]=$c} END {print v[int((NR+1)/2)]}'
}

# Builds the release binaries once (cortex, and the products named, e.g. BareHummingbird) and sets BIN.
build_cortex() { # [product...]
  echo "== building the release binaries"
  local product
  for product in cortex "$@"; do
    swift build -c release --product "$product" >/dev/null
  done
  BIN=$(swift build -c release --show-bin-path)
}

# Starts `cortex serve` on loopback PORT with DATABASE_URL (default: an SQLite file of its own)
# and extra VAR=value settings, logging to $WORK/PORT.log; waits until /ready answers.
start_cortex() { # port [database-url] [env...]
  local port=$1 url=${2:-}
  shift
  [ $# -gt 0 ] && shift
  [ -n "$url" ] || url="sqlite:$WORK/$port.db"
  env HOST=127.0.0.1 PORT="$port" DATABASE_URL="$url" LOG_LEVEL=warning "$@" "$BIN/cortex" serve >"$WORK/$port.log" 2>&1 &
  wait_for "http://127.0.0.1:$port/ready"
}
