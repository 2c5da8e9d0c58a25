#!/usr/bin/env bash
# Where a harness server's time goes: its user and kernel CPU time and its minor page faults
# per request, read from /proc/PID/stat before and after one wrk run (docs/performance.md,
# "Where a sign-in's time goes"). The server and wrk are pinned as the harness pins them.
#
#   bash benches/cpu-split.sh VARIANT [plain|login] [SECONDS]
#
# VARIANT is a variant of `sessionward-bench serve` without a database (bare, sw-mem,
# ts-mem). SESSIONWARD_BENCH names the binary (default: the release build in
# CARGO_TARGET_DIR, or target/). Loopback only; stops by itself after SECONDS (default 5).
set -euo pipefail

variant=${1:?usage: cpu-split.sh VARIANT [plain|login] [SECONDS]}
workload=${2:-login}
seconds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
bin=${SESSIONWARD_BENCH:-${CARGO_TARGET_DIR:-$here/../target}/release/sessionward-bench}
case $workload in
  login) method=POST path=/login ;;
  plain) method=GET path=/plain ;;
  *) echo "workload: login or plain" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/setup.sh)" >&2; exit 2; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 0 "$bin" serve --variant "$variant" --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# Fields 10, 14 and 15 of /proc/PID/stat: minor faults, user and system time in clock ticks.
stat() { awk '{print $10, $14, $15}' "/proc/$server/stat"; }
read -r f0 u0 s0 < <(stat)
out=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" -s "$here/wrk/load.lua" \
  "http://127.0.0.1:$port$path" -- "$method" - "Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1" |
  tail -1)
read -r f1 u1 s1 < <(stat)
requests=$(grep -o '"requests":[0-9]*' <<<"$out" | cut -d: -f2)
python3 - "$variant" "$workload" "$seconds" "$requests" "$(getconf CLK_TCK)" \
  "$f0" "$u0" "$s0" "$f1" "$u1" "$s1" <<'EOF'
import sys
v, w, secs, n, tck = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
f0, u0, s0, f1, u1, s1 = map(int, sys.argv[6:])
us = lambda ticks: ticks * 1e6 / tck / n
print(f"{v} {w}: {n // secs} req/s, per request: user {us(u1 - u0):.2f} us, "
      f"kernel {us(s1 - s0):.2f} us, minor faults {(f1 - f0) / n:.4f}")
EOF
