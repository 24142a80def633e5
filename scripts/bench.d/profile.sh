#!/usr/bin/env bash
# Where the time goes on the paths that miss their targets: one fresh idemproxy per path
# (GET pass-through, unique-key POSTs on the memory store and on Redis, the bench's origin and
# Redis settings), `wrk -t1 -c64` for SECS+2 seconds, user and system time per request from
# /proc over the whole run, and `perf record -g -e cpu-clock` of idemproxy (and of redis-server
# for the Redis path) over SECS seconds of it. Prints the splits and each profile's top symbols.
#
#   scripts/bench.d/profile.sh               # builds the release binary first
#   BIN=path/to/idemproxy OUT=/tmp/prof SECS=12 scripts/bench.d/profile.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/common.sh
ensure_packages wrk nginx-light redis-server linux-perf curl
BIN=${BIN:-$(scripts/build | tail -n 1)}
SECS=${SECS:-12}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
work=$(mktemp -d); chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
    [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for name in ORIGIN REDIS GETPORT MEMPORT REDISPORT; do pick_port "$name"; done
BODY='{"id":"pay_8e03978e40d5","object":"payment","amount":2599,"currency":"eur","status":"succeeded","created":1764400000,"livemode":false,"metadata":{}}'
cat > "$work/origin.conf" <<NGINX
worker_processes 1;
pid $work/origin.pid;
error_log $work/origin.err warn;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$ORIGIN reuseport backlog=4096;
        location / { default_type application/json; return 201 '$BODY'; }
    }
}
NGINX
nginx -p "$work" -c "$work/origin.conf" -g 'daemon on;'
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec \
    --maxmemory-policy noeviction --dir "$work" --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
config() { # port backend
    cat <<YAML
listen: 127.0.0.1:$1
workers: 1
upstream: { url: "http://127.0.0.1:$ORIGIN", max_idle_connections: 128 }
store: { backend: $2, memory: { max_bytes: 8GiB }, redis: { url: "redis://127.0.0.1:$REDIS/0" } }
limits: { max_connections: 20000, idle_timeout: 120s, header_timeout: 120s }
logging: { access_log: false }
admin: { listen: "" }
shutdown_grace: 1s
YAML
}
config "$GETPORT" memory > "$work/get.yaml"
config "$MEMPORT" memory > "$work/memory.yaml"
config "$REDISPORT" redis > "$work/redis.yaml"
"$BIN" serve --config "$work/get.yaml" 2>/dev/null & pids+=($!); GET_PID=$!
"$BIN" serve --config "$work/memory.yaml" 2>/dev/null & pids+=($!); MEM_PID=$!
"$BIN" serve --config "$work/redis.yaml" 2>/dev/null & pids+=($!); REDIS_IDEM_PID=$!
for port in $GETPORT $MEMPORT $REDISPORT; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
REDIS_PID=$(cat "$work/redis.pid")
HZ=$(getconf CLK_TCK)
split() { local fields; read -ra fields < "/proc/$1/stat"; echo "${fields[13]} ${fields[14]}"; }
profile() { # name port script pids...
    local name=$1 port=$2 script=$3; shift 3
    local args=(-t1 -c64 -d"$((SECS + 2))s") before=() perfs=() index=0 pid
    [ -n "$script" ] && args+=(-s "scripts/bench.d/$script.lua")
    for pid in "$@"; do before+=("$(split "$pid")"); done
    wrk "${args[@]}" "http://127.0.0.1:$port/v1/payments" > "$OUT/$name.wrk" 2>&1 &
    local wrk_pid=$!
    sleep 1
    for pid in "$@"; do
        perf record -F 499 -g -e cpu-clock -p "$pid" -o "$OUT/$name.$index.data" -- sleep "$SECS" >/dev/null 2>&1 &
        perfs+=($!); index=$((index + 1))
    done
    wait "$wrk_pid" "${perfs[@]}"
    local requests; requests=$(awk '/requests in/ {print $1}' "$OUT/$name.wrk")
    index=0
    for pid in "$@"; do
        read -r user0 system0 <<<"${before[$index]}"
        read -r user1 system1 <<<"$(split "$pid")"
        awk -v n="$requests" -v u=$((user1 - user0)) -v s=$((system1 - system0)) -v hz="$HZ" -v what="$name, $(cat "/proc/$pid/comm")" \
            'BEGIN { printf "%s: %d requests, %.1f µs user + %.1f µs system per request\n", what, n, u * 1e6 / hz / n, s * 1e6 / hz / n }'
        # Only the head of the report is wanted: its early end is not a failure.
        { perf report -i "$OUT/$name.$index.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
            | grep '%' | grep -v '^#' | head -n 12 | sed -E 's/ +- +- *$//; s/^ */    /' | cut -c1-160; } || true
        index=$((index + 1))
    done
}
profile get "$GETPORT" "" "$GET_PID"
profile unique-memory "$MEMPORT" unique_post "$MEM_PID"
profile unique-redis "$REDISPORT" unique_post "$REDIS_IDEM_PID" "$REDIS_PID"
echo "profiles in $OUT"
