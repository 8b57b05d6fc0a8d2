#!/usr/bin/env bash
# RUSTC_WRAPPER of scripts/fuzz-smoke.sh: compiles jisr and the fuzz
# targets with sanitizer coverage, which libFuzzer needs to know which
# inputs reach new code (without it, it keeps no input to mutate). These
# are stable rustc flags (cargo-fuzz adds the same, and a sanitizer, which
# needs nightly). Other crates are compiled as usual, so the dependencies
# the tests built are reused.
set -euo pipefail
rustc="$1"
shift
case " $* " in
  *" --crate-name jisr "* | *" fuzz_targets/"*)
    exec "$rustc" "$@" --cfg fuzzing \
      -Cpasses=sancov-module \
      -Cllvm-args=-sanitizer-coverage-level=4 \
      -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
      -Cllvm-args=-sanitizer-coverage-pc-table \
      -Cllvm-args=-sanitizer-coverage-trace-compares
    ;;
esac
exec "$rustc" "$@"
