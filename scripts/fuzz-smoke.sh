#!/usr/bin/env bash
# Builds every fuzz target of fuzz/ on the stable toolchain and runs each
# for a bounded number of inputs, starting from its committed seeds
# (fuzz/seeds/<target>/), so that the targets cannot rot and their
# properties hold on real artefacts and on inputs mutated from them.
#
# jisr and the targets are compiled with sanitizer coverage on stable flags
# (scripts/fuzz-rustc.sh), so libFuzzer keeps the inputs that reach new
# code; there is no AddressSanitizer (nightly only). A smoke test, not a
# fuzzing campaign: fuzz/README.md says how to run one with cargo-fuzz.
#
# The targets are built in one cargo invocation into the main target
# directory (dev profile), so the dependencies the test suite built are
# reused. A failing input is kept in target/fuzz-artifacts/<target>/.
#
#   FUZZ_RUNS  inputs per target (default 2000)
#   FUZZ_SEED  libFuzzer's random seed (default: a new one, printed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${FUZZ_RUNS:-2000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export RUSTC_WRAPPER="$PWD/scripts/fuzz-rustc.sh"
bin_dir="$CARGO_TARGET_DIR/debug"

targets=()
for file in fuzz/fuzz_targets/*.rs; do
  name=$(basename "$file" .rs)
  [ "$name" = common ] || targets+=("$name")
done

start=$(date +%s)
# Cargo does not tell a wrapped rustc's output from a plain one: the
# codegen-units override (no other effect in a debug build) gives the
# instrumented jisr an artifact of its own, so that a later build without
# the wrapper (examples/make_seeds) never links it.
cargo build --manifest-path fuzz/Cargo.toml --bins \
  --config 'profile.dev.package.jisr.codegen-units=255'
built=$(date +%s)
echo "fuzz-smoke: built ${#targets[@]} targets in $((built - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in "${targets[@]}"; do
  seeds="fuzz/seeds/$target"
  if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
    echo "fuzz-smoke: $target has no seeds in $seeds (cargo run --manifest-path fuzz/Cargo.toml --example make_seeds)" >&2
    failed=1
    continue
  fi
  mkdir -p "$work/$target" "target/fuzz-artifacts/$target"
  log="$work/$target.log"
  # New inputs go to the first (scratch) directory; the seeds stay as
  # committed, and are all kept to mutate (-keep_seed=1) even where one
  # reaches no new code. -timeout bounds one input, -max_total_time the
  # target.
  if "$bin_dir/$target" -runs="$runs" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
      -keep_seed=1 -timeout=10 -max_total_time=120 -print_final_stats=0 \
      -artifact_prefix="target/fuzz-artifacts/$target/" \
      "$work/$target" "$seeds" >"$log" 2>&1; then
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
    seed=$(sed -n 's/^INFO: Seed: //p' "$log" | head -1)
    corpus=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
    echo "fuzz-smoke: $target: ${done_line:-no 'Done' line}; $corpus (seed $seed, $(ls "$seeds" | wc -l) seeds)"
    if [ -z "$done_line" ]; then failed=1; fi
  else
    echo "fuzz-smoke: $target FAILED; the end of its output:" >&2
    tail -40 "$log" >&2
    failed=1
  fi
done
echo "fuzz-smoke: done in $(($(date +%s) - start)) s"
exit "$failed"
