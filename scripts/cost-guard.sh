#!/usr/bin/env bash
# CI regression guard for the cost of a call (issue 20, point 5): the
# gateway's instructions per call under callgrind, on the debug binary the
# test run has already built, printed beside a committed baseline. Fails
# only when the count is more than twice the baseline: a change that
# doubles the per-call cost must be seen; noise (the audit batches' sizes,
# compiler updates move a debug build's count by some per cent) must not
# fail CI. Not a timed test: instructions do not move with the machine's
# load. A step of .ci/run, about a minute (docs/BENCHMARKS.md, "The CI cost
# guard"); scripts/callgrind-guard.sh is the finer, release-build check.
#
# The load: `jisr demo --serve`'s network (providers, PKI, consent rules),
# a second `jisr serve` of its configuration under callgrind, not
# instrumented while it starts (--instr-atstart=no); WARM warm-up calls
# from `jisr bench --gateway … --consents-as portal` (which also grants the
# consents and saves their ids), then instrumentation on and CALLS measured
# calls over one connection, presenting those ids without granting again. Only the gateway's process counts.
# Usage: scripts/cost-guard.sh [BIN=target/debug/jisr]
# When a change makes a call legitimately dearer (or cheaper), run this
# script, commit the new BASELINE and say why in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/jisr}
# Debug build (`cargo build`, rustc 1.95.0), 2026-12-07, after issue 20's sync-thread
# acknowledgements: 2,712,537 (one run; see docs/BENCHMARKS.md).
BASELINE=2712537
WARM=${WARM:-20}
CALLS=${CALLS:-100}

if ! command -v valgrind >/dev/null 2>&1; then
  echo "cost-guard: installing valgrind (callgrind counts the instructions)" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind >/dev/null
fi
if [ ! -x "$BIN" ]; then
  echo "cost-guard: $BIN is missing; building it (cargo build --bin jisr)" >&2
  cargo build --quiet --bin jisr
fi

D=$(mktemp -d /tmp/cost-guard.XXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$D"
}
trap cleanup EXIT
fail() {
  echo "cost-guard: FAIL: $1" >&2
  for log in "$D"/*.log "$D"/*.txt; do [ -f "$log" ] && { echo "--- $log" >&2; tail -5 "$log" >&2; }; done
  exit 1
}
# Waits up to $2 tenths of a second for file $1 to be written.
wait_file() {
  for _ in $(seq 1 "$2"); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

"$BIN" demo --serve --dir "$D" >"$D/demo.log" 2>&1 &
PIDS+=($!)
wait_file "$D/gateway.addr" 1200 || fail "the demo network did not start within 120 s"
# Its own stores, no admin port, no reload polling and no checkpoint timer
# inside the measured calls: only the calls' work is counted.
sed -e 's#^path = "consents.redb"#path = "cg-consents.redb"#' \
  -e 's#^dir = "audit"#dir = "cg-audit"#' \
  -e 's#^path = "bus.redb"#path = "cg-bus.redb"#' \
  -e 's#^admin_listen.*##' \
  -e 's#^\[node\]#[node]\nreload_poll_ms = 0#' \
  -e 's#^\[audit\]#[audit]\ncheckpoint_interval_ms = 60000#' \
  -e 's#^\[consent\]#[consent]\ntimeout_ms = 10000#' "$D/jisr.toml" >"$D/cg.toml"
RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$D/cg.out.%p" \
  "$BIN" serve --config "$D/cg.toml" --addr-file "$D/cg.addr" >"$D/cg.log" 2>&1 &
VG=$!
PIDS+=("$VG")
wait_file "$D/cg.addr" 1800 || fail "the gateway under valgrind did not start within 180 s"
ADDR=$(cat "$D/cg.addr")
"$BIN" bench --gateway "$ADDR" --pki "$D/pki" --as education --consents-as portal \
  --consent-ids "$D/consent-ids" --requests "$WARM" --connections 1 --in-flight 4 --warmup 0s >"$D/warm.txt" 2>&1 ||
  fail "the warm-up calls failed"
callgrind_control -i on "$VG" >/dev/null
callgrind_control -z "$VG" >/dev/null
"$BIN" bench --gateway "$ADDR" --pki "$D/pki" --as education --consent-ids "$D/consent-ids" \
  --requests "$CALLS" --connections 1 --in-flight 4 --warmup 0s >"$D/run.txt" 2>&1 ||
  fail "the measured calls failed"
grep -q "errors 0" "$D/run.txt" || fail "the measured calls had errors: $(grep -m1 'errors' "$D/run.txt")"
callgrind_control -d "$VG" >/dev/null
# The dump of the measured calls only (the one at exit would add shutdown).
wait_file "$D/cg.out.$VG.1" 300 || fail "callgrind wrote no dump within 30 s"
TOTAL=$(awk '/^totals:/ {s += $2} END {print s + 0}' "$D/cg.out.$VG.1")
[ "$TOTAL" -gt 0 ] || fail "callgrind dumped no counts"
COUNT=$((TOTAL / CALLS))
LIMIT=$((BASELINE * 2))
echo "cost-guard: gateway $COUNT instructions per call ($BIN, debug profile, $CALLS calls), baseline $BASELINE, limit $LIMIT (2x)"
if [ "$COUNT" -gt "$LIMIT" ]; then
  fail "$COUNT > $LIMIT instructions per call; profile with scripts/callgrind-where.sh, or commit a new BASELINE with the reason"
fi
