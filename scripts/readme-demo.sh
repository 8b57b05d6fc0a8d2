#!/usr/bin/env bash
# Regenerates the README's sample demo output from a real run: plays
# `jisr demo` (its standard output; the WARN lines go to standard error)
# and puts it, as printed, in the fenced block between the markers
# `<!-- demo-output:begin -->` and `<!-- demo-output:end -->` of README.md.
# The test `docs::the_readme_demo_output_is_a_real_run` fails when that
# block no longer matches a fresh run (ports, times and ids aside); run
# this script then, and commit the README.
#
# Usage: scripts/readme-demo.sh [JISR_BINARY]   (default: a `cargo build`)
set -euo pipefail
cd "$(dirname "$0")/.."

jisr=${1:-}
if [ -z "$jisr" ]; then
  cargo build --quiet
  jisr=target/debug/jisr
fi
out=$(mktemp)
trap 'rm -f "$out" "$out.readme"' EXIT
"$jisr" demo >"$out" 2>/dev/null

grep -q '^<!-- demo-output:begin -->$' README.md && grep -q '^<!-- demo-output:end -->$' README.md || {
  echo "readme-demo.sh: README.md has no <!-- demo-output:begin --> / <!-- demo-output:end --> markers" >&2
  exit 1
}
awk -v out="$out" '
  /^<!-- demo-output:begin -->$/ {
    print; print "```text"
    while ((getline line < out) > 0) print line
    print "```"; skip = 1; next
  }
  /^<!-- demo-output:end -->$/ { skip = 0 }
  !skip { print }
' README.md >"$out.readme"
cat "$out.readme" >README.md
echo "readme-demo.sh: README.md's demo output regenerated from a run of $jisr" >&2
