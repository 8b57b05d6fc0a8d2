#!/usr/bin/env bash
# Instructions per call of `jisr serve` (demo configuration, consent rules)
# under callgrind: 500 warm-up calls, counters zeroed, 3,000 measured calls.
# Usage: scripts/callgrind-per-call.sh BIN OUT-PREFIX  (CONNS, INFLIGHT: load
# shape; WARM, CALLS: warm-up and measured calls, default 500 and 3000)
# The consent store may take seconds under valgrind on a loaded machine
# (the bench grants its consents first). Needs valgrind (callgrind_control).
# Prints instructions per call. With SYSCALLS=1 the gateway runs natively
# instead and `perf stat` counts its system calls (reads, writes, futex,
# epoll) over the measured calls: counts of events, not times, though how
# many frames share one read or write moves with the load's timing.
set -u
BIN=$1; OUT=$2
D=$(mktemp -d /tmp/cg.XXXX)
"$BIN" demo --serve --dir "$D" > "$D/demo.log" 2>&1 &
DEMO=$!
for i in $(seq 1 100); do [ -s "$D/gateway.addr" ] && break; sleep 0.2; done
sed -e 's#^path = "consents.redb"#path = "cg-consents.redb"#' -e 's#^dir = "audit"#dir = "cg-audit"#' -e 's#^path = "bus.redb"#path = "cg-bus.redb"#' -e 's#^admin_listen.*##' -e 's#^\[node\]#[node]\nreload_poll_ms = 0#' -e 's#^\[audit\]#[audit]\ncheckpoint_interval_ms = 60000#' -e 's#^\[consent\]#[consent]\ntimeout_ms = 10000#' "$D/jisr.toml" > "$D/cg.toml"
RUN="valgrind --tool=callgrind --callgrind-out-file=$OUT.%p"
[ "${SYSCALLS:-0}" = 1 ] && RUN=
$RUN "$BIN" serve --config "$D/cg.toml" --addr-file "$D/cg.addr" > "$D/cg.log" 2>&1 &
VG=$!
for i in $(seq 1 600); do [ -s "$D/cg.addr" ] && break; sleep 0.5; done
ADDR=$(cat "$D/cg.addr")
"$BIN" bench --gateway "$ADDR" --pki "$D/pki" --as education --consents-as portal --requests ${WARM:-500} --connections ${CONNS:-2} --in-flight ${INFLIGHT:-8} > "$D/warm.txt" 2>&1
MEASURE="${CALLS:-3000}"
if [ "${SYSCALLS:-0}" = 1 ]; then
  "$(dirname "$0")/syscalls-per-call.sh" $VG "$MEASURE" "$BIN" bench --gateway "$ADDR" --pki "$D/pki" --as education --consents-as portal --requests "$MEASURE" --connections ${CONNS:-2} --in-flight ${INFLIGHT:-8} > "$D/run.txt" 2>&1
  grep "per call" "$D/run.txt"
else
  callgrind_control -z $VG >/dev/null
  "$BIN" bench --gateway "$ADDR" --pki "$D/pki" --as education --consents-as portal --requests "$MEASURE" --connections ${CONNS:-2} --in-flight ${INFLIGHT:-8} > "$D/run.txt" 2>&1
  callgrind_control -d $VG >/dev/null
  sleep 1
fi
kill $VG; wait $VG 2>/dev/null
kill $DEMO; wait $DEMO 2>/dev/null
[ "${SYSCALLS:-0}" = 1 ] || grep -h "^totals:" $OUT.$VG.1 | awk -v n="$MEASURE" '{s+=$2} END {printf "instructions per call: %.0f (total %d over %d calls)\n", s/n, s, n}'
grep -E "errors|req/s|calls" "$D/run.txt" | head -5
echo "dir: $D"
