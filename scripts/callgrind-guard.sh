#!/usr/bin/env bash
# Regression guard (issue 20): Jisr's instructions per call under
# callgrind, printed and checked against the figure committed below; fails
# when they rise more than MARGIN_PCT over it. A count of instructions does
# not move with the machine's load, so the check needs no timing; the
# margin covers the run-to-run spread the audit batches' sizes cause
# (docs/BENCHMARKS.md, "Instructions per call").
#
# Measures a release binary (the figure below is a release build's):
# scripts/callgrind-per-call.sh's load (500 warm-up calls, 3,000 measured,
# RUST_LOG=warn as under `bench --compare`). Not a step of .ci/run: CI
# builds only the debug binary, whose count is a different figure and which
# took over five minutes for 1,200 calls under callgrind on the loaded
# 2-core VM; a release build adds about ten minutes there. Run it before
# merging a change to the call path, after `cargo build --release`.
# Usage: scripts/callgrind-guard.sh [BIN=target/release/jisr]
# When a change makes a call legitimately dearer (or cheaper), measure with
# this script and commit the new FIGURE with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/jisr}
# Release build after issue 20's cuts 2 and 3, RUST_LOG=warn, 2026-12-07
# (docs/BENCHMARKS.md, "Instructions per call"); runs spread over ±6 %.
FIGURE=193199
MARGIN_PCT=25
command -v valgrind >/dev/null || { echo "callgrind-guard: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "callgrind-guard: $BIN is missing: build it first (cargo build --release)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/cg-guard.XXXX)
trap 'rm -rf "$OUT"' EXIT
LINE=$(RUST_LOG=warn scripts/callgrind-per-call.sh "$BIN" "$OUT/cg" | tee /dev/stderr | grep "^instructions per call:" || true)
COUNT=$(echo "$LINE" | awk '{print $4}')
LIMIT=$((FIGURE + FIGURE * MARGIN_PCT / 100))
echo "callgrind-guard: Jisr $COUNT instructions per call ($BIN), committed $FIGURE, limit $LIMIT (+$MARGIN_PCT %)"
if [ -z "$COUNT" ] || [ "$COUNT" -lt 1000 ]; then
  echo "callgrind-guard: no measurement (the load did not run; see the lines above)" >&2
  exit 1
fi
if [ "$COUNT" -gt "$LIMIT" ]; then
  echo "callgrind-guard: FAIL: $COUNT > $LIMIT; profile with scripts/callgrind-where.sh, or commit a new FIGURE with the reason" >&2
  exit 1
fi
