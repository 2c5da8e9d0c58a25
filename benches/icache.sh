#!/usr/bin/env bash
# How much code a harness server runs per request: instructions and level-1 instruction-cache
# misses per request, counted by callgrind's cache simulation (which takes the machine's own
# cache sizes) in the server while wrk drives one route (docs/performance.md, "Issue 16,
# seventh round"). The counts of an idle server (started, ready, no request) are subtracted.
#
#   bash benches/icache.sh VARIANT [plain|login] [SECONDS]
#
# VARIANT is a variant of `sessionward-bench serve` without a database (bare, sw-mem,
# ts-mem). SESSIONWARD_BENCH names the binary (default: the release build in
# CARGO_TARGET_DIR, or target/). Loopback only; the server is stopped after SECONDS (default
# 10) of load. Under valgrind a server answers about 1,000 requests a second.
set -euo pipefail

variant=${1:?usage: icache.sh VARIANT [plain|login] [SECONDS]}
workload=${2:-login}
seconds=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SESSIONWARD_BENCH:-${CARGO_TARGET_DIR:-$here/../target}/release/sessionward-bench}
case $workload in
  login) method=POST path=/login ;;
  plain) method=GET path=/plain ;;
  *) echo "workload: login or plain" >&2; exit 2 ;;
esac
for tool in wrk valgrind callgrind_control; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (scripts/setup.sh)" >&2; exit 2; }
done
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill -9 "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the server under callgrind on $port, writing its counts under $work/$1.
start() {
  port=$(free_port)
  # Started from a child shell, so that this one does not report the kill as a job's end.
  server=$(sh -c 'taskset -c 0 valgrind --tool=callgrind --cache-sim=yes \
    --callgrind-out-file="$1" "$2" serve --variant "$3" --port "$4" >/dev/null 2>&1 & echo $!' \
    sh "$work/$1.out" "$bin" "$variant" "$port")
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2
  exit 1
}

# Dumps the counts so far, stops the server, prints "instructions I1-misses".
stop() {
  callgrind_control -d "$server" >/dev/null 2>&1
  for _ in $(seq 100); do
    ls "$work/$1".out* >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 1
  kill -9 "$server" 2>/dev/null || true
  while kill -0 "$server" 2>/dev/null; do sleep 0.1; done
  server=
  # The events are Ir Dr Dw I1mr ...: the first and the fourth.
  awk '/^(summary|totals):/ {print $2, $5; exit}' "$(ls -t "$work/$1".out* | head -1)"
}

start idle
read -r idle_ir idle_i1 < <(stop idle)

start load
out=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" -s "$here/wrk/load.lua" \
  "http://127.0.0.1:$port$path" -- "$method" - "Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1" |
  tail -1)
requests=$(grep -o '"requests":[0-9]*' <<<"$out" | cut -d: -f2)
read -r ir i1 < <(stop load)

python3 - "$variant" "$workload" "$requests" "$idle_ir" "$idle_i1" "$ir" "$i1" <<'EOF'
import sys
v, w = sys.argv[1], sys.argv[2]
n, idle_ir, idle_i1, ir, i1 = map(int, sys.argv[3:])
print(f"{v} {w}: {n} requests, per request: {(ir - idle_ir) / n:.0f} instructions, "
      f"{(i1 - idle_i1) / n:.0f} I1 misses")
EOF
