#!/bin/bash
# CPU per request of one benchmark-harness server variant on Redis, and the Redis commands it
# runs (docs/performance.md, "Redis: where the time goes"). Needs redis-cli, wrk, curl, taskset,
# python3 and the release harness binary; loopback only, bounded (1 s warm-up + 3 s measured).
# Run it under the build lock, like every benchmark:
#   flock /tmp/sessionward-cargo.lock scripts/redis-cpu-per-request.sh \
#     target/release/sessionward-bench sw-redis bare /read GET [perf]
# Arguments: BIN VARIANT SHAPE(bare|app) PATH METHOD [perf]; REDIS_URL defaults to db 9.
# Prints req/s, the server's CPU (utime+stime of its process) and Redis' CPU (INFO cpu) per
# request, and the commandstats delta (commands inside scripts included). With `perf` it also
# records the server with `perf record -g` into the run's folder.
BIN=$1; VAR=$2; SHAPE=$3; PATHQ=$4; METHOD=$5; PERF=$6
UA="Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1"
DIR=${TMPDIR:-/tmp}/sw-redis-cpu-$VAR-$(basename $PATHQ); mkdir -p $DIR
taskset -c 0 $BIN serve --variant $VAR --port 0 --shape $SHAPE --database-url ${REDIS_URL:-redis://127.0.0.1:6379/9} > $DIR/server.out 2>&1 &
SPID=$!
for i in $(seq 50); do grep -q ready $DIR/server.out && break; sleep 0.2; done
ADDR=$(sed -n 's/^ready //p' $DIR/server.out)
LOGIN=/login; [ $SHAPE = app ] && LOGIN=/api/login
: > $DIR/cookies
for i in $(seq 300); do curl -s -o /dev/null -D - -X POST -H "User-Agent: $UA" -H "Sec-Fetch-Site: same-origin" http://$ADDR$LOGIN | sed -n 's/^set-cookie: \([^;]*\);.*/\1/ip' >> $DIR/cookies; done
wc -l < $DIR/cookies
CK=$DIR/cookies; case $PATHQ in *login) CK=-;; esac
BODY=-; [ $METHOD = PUT ] && BODY='{"value":"dark"}'
redis-cli info commandstats > $DIR/cs0
taskset -c 1 wrk -t1 -c32 -d1s -s $(dirname "$0")/../benches/wrk/load.lua http://$ADDR$PATHQ -- $METHOD $CK "$UA" "$BODY" >/dev/null
redis-cli info commandstats > $DIR/cs1
if [ -n "$PERF" ]; then perf record -F 2000 -g -p $SPID -o $DIR/perf.data -- sleep 3 > /dev/null 2>&1 & PP=$!; fi
redis-cli info commandstats > $DIR/cs1
RC0=$(redis-cli info cpu | awk -F: '/used_cpu_(user|sys):/{s+=$2} END{printf "%.4f", s}')
SC0=$(awk '{print $14+$15}' /proc/$SPID/stat)
taskset -c 1 wrk -t1 -c32 -d3s -s $(dirname "$0")/../benches/wrk/load.lua http://$ADDR$PATHQ -- $METHOD $CK "$UA" "$BODY" > $DIR/wrk.out
REQ=$(grep -o '"requests":[0-9]*' $DIR/wrk.out | cut -d: -f2)
grep Requests/sec $DIR/wrk.out
redis-cli info commandstats > $DIR/cs2
RC1=$(redis-cli info cpu | awk -F: '/used_cpu_(user|sys):/{s+=$2} END{printf "%.4f", s}')
SC1=$(awk '{print $14+$15}' /proc/$SPID/stat)
python3 -c "r=$REQ; rc=$RC1-$RC0; sc=($SC1-$SC0)/100; print(f'PER-REQ server {sc/r*1e6:.1f} us  redis {rc/r*1e6:.1f} us  total {(sc+rc)/r*1e6:.1f} us  (req={r})')"
[ -n "$PERF" ] && wait $PP
kill $SPID; wait $SPID 2>/dev/null
python3 - $DIR/cs1 $DIR/cs2 <<'PY'
import sys,re
def rd(f):
    d={}
    for l in open(f):
        m=re.match(r'cmdstat_(\S+):calls=(\d+),usec=(\d+)',l)
        if m: d[m.group(1)]=(int(m.group(2)),int(m.group(3)))
    return d
a=rd(sys.argv[1]); b=rd(sys.argv[2])
for k in b:
    c=b[k][0]-a.get(k,(0,0))[0]; u=b[k][1]-a.get(k,(0,0))[1]
    if c>0: print(f"{k:12s} calls={c:8d} usec={u:8d} per={u/c:.2f}")
PY
