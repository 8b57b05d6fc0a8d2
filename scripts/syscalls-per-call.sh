#!/usr/bin/env bash
# System calls of process PID per call while a load command runs: `perf
# stat` with the kernel's syscall tracepoints (which work in VMs where the
# hardware counters do not) attached to PID for the command's duration,
# divided by CALLS. Used by scripts/callgrind-per-call.sh and
# scripts/callgrind-proxies.sh with SYSCALLS=1, so Jisr, nginx and HAProxy
# are counted the same way. Counts of events, not times; how many frames
# share one read or write still moves with the load's timing.
# Usage: scripts/syscalls-per-call.sh PID CALLS COMMAND...  (prints the
# command's output, then one "syscalls per call:" line)
set -u
PID=$1; CALLS=$2; shift 2
EVENTS=raw_syscalls:sys_enter
for s in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait futex fdatasync pwrite64 io_uring_enter; do
  EVENTS="$EVENTS,syscalls:sys_enter_$s"
done
OUT=$(mktemp)
perf stat -x, -e "$EVENTS" -p "$PID" -o "$OUT" &
PERF=$!
# perf attaches within milliseconds; wait for its output file's header.
for _ in $(seq 1 50); do [ -s "$OUT" ] && break; sleep 0.1; done
"$@"
kill -INT $PERF; wait $PERF 2>/dev/null
awk -F, -v n="$CALLS" '
  $3 ~ /sys_enter/ { name = $3; sub(/.*sys_enter_?/, "", name); if (name == "") name = "all";
    if ($1 + 0 > 0) printf "%s %.2f  ", name, $1 / n }
  END { printf "\n" }' "$OUT" | sed 's/^/syscalls per call: /'
rm -f "$OUT"
