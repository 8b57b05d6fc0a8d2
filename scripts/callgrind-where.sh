#!/usr/bin/env bash
# Where a call's instructions go, from a callgrind file written by
# scripts/callgrind-per-call.sh: per call, the inclusive count of the
# functions that frame the path (the largest line callgrind_annotate gives
# for each, since inlining splits a function over several lines), and the
# self count of the leaf costs (SHA-256, memcpy, HPACK, allocator).
# Usage: scripts/callgrind-where.sh CALLGRIND-FILE [CALLS=3000]
set -euo pipefail
FILE=$1; CALLS=${2:-3000}
INCL=$(mktemp); SELF=$(mktemp)
trap 'rm -f "$INCL" "$SELF"' EXIT
callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$FILE" 2>/dev/null > "$INCL"
callgrind_annotate --auto=no --threshold=100 "$FILE" 2>/dev/null > "$SELF"
total=$(awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}' "$SELF")

# incl LABEL FIXED-STRING: the largest inclusive line whose function holds it.
incl() {
  { grep -F -- "$2" "$INCL" || true; } | awk -v n="$CALLS" -v l="$1" \
    '{gsub(",","",$1); if ($1+0 > m) m = $1+0} END {printf "| %s | %d |\n", l, m/n}'
}
# self LABEL REGEX: the sum of self lines whose function matches.
self() {
  { grep -E -- "$2" "$SELF" || true; } | awk -v n="$CALLS" -v l="$1" \
    '{gsub(",","",$1); s += $1} END {printf "| %s (self) | %d |\n", l, s/n}'
}

echo "| per call (instructions) | $(basename "$FILE") |"
echo "| --- | ---: |"
awk -v t="$total" -v n="$CALLS" 'BEGIN {printf "| whole process | %d |\n", t/n}'
incl "consumer leg: one stream's task (hyper H2Stream, the whole exchange)" 'hyper::proto::h2::server::H2Stream<F,B,Ex> as core::future::future::Future>::poll'
incl "consumer connections: HTTP/2 + TLS I/O (hyper server)" 'hyper::proto::h2::server::Server<T,S,B,E> as core::future::future::Future>::poll'
incl "provider connections: HTTP/2 + TLS I/O (h2 client task)" 'jisr::gateway::upstream::wire::connect::{{closure}}::{{closure}}'
incl "checks before the leg: subject walk, consent, digests (prepare)" 'jisr::gateway::exchange::prepare::prepare::{{closure}}'
incl "the end: audit hand-off, metrics, log line (finish)" 'jisr::gateway::exchange::finish::finish::{{closure}}'
incl "  of which the exchange log line (log_exchange)" 'jisr::gateway::exchange::finish::log_exchange'
incl "  the audit record as an owned copy (to_record)" 'jisr::audit::record::Trail::to_record'
incl "  the audit record encoded from the trail (encode_record)" 'jisr::audit::record::Trail::encode_record'
incl "String clones (all callers)" '<alloc::string::String as core::clone::Clone>::clone'
incl "audit writer: leaf hashes, segment writes (append)" 'jisr::audit::log::storage::Storage>::append'
incl "keyed digests and pseudonym (Pseudonymizer::digest)" 'jisr::audit::keys::Pseudonymizer::digest'
incl "runtime: waiting for and dispatching events (park)" 'tokio::runtime::scheduler::current_thread::Context::park'
self "SHA-256, portable path under valgrind" 'sha2::sha256::compress256'
self "memcpy/memmove" '__memcpy|__memmove'
self "HPACK" 'h2::hpack::'
self "allocator (mimalloc)" 'mimalloc|mi_free|mi_malloc|_mi_'
self "TLS record crypto (AES-GCM)" 'aes_hw|gcm_ghash|aes_gcm'
