#!/usr/bin/env python3
"""Where a proxy's instructions go, grouped the same way for Jisr, nginx and
HAProxy (issue 20, point 6): TLS, HTTP/2, proxying, runtime / event loop,
and for Jisr its checks, audit and telemetry.

Reads a callgrind file (scripts/callgrind-per-call.sh for Jisr,
scripts/callgrind-proxies.sh for nginx and HAProxy) and prints one
Markdown row per group, in instructions per call.

How a function's own (self) instructions are grouped:
- a function whose name (or, for OpenSSL, whose library) says what it is
  belongs to that group (the tables below);
- a function that does work on behalf of its caller (memcpy, malloc,
  `core::`/`alloc::` helpers, SHA-256's compression, HAProxy's pools, and
  the proxies' functions that Debian's stripped binaries leave unnamed)
  has no group of its own: its instructions go to its callers in
  proportion to what each call cost (callgrind's call arcs), up to the
  nearest caller that has a group. What reaches no named caller is
  "unattributed".
This is callgrind's caller-callee graph, not full stacks, so a helper
called from two groups is split by its arcs' costs, which is exact for a
helper that costs the same per call and an estimate otherwise.

Usage: scripts/callgrind-groups.py CALLGRIND-FILE [CALLS=3000] [LABEL]
"""
import re
import sys
from collections import defaultdict

# (group, regex on "object|function"), first match wins. Jisr is one static
# binary: its functions are told apart by their Rust path; nginx and
# HAProxy by their C names and, for OpenSSL, by the library.
GROUPS = [
    ("TLS", r"libssl\.so|libcrypto\.so|\|<?(rustls|tokio_rustls|ring|webpki|rustls_pki_types|aws_lc_rs)::"
     r"|\|(aws_lc_|ring_core_|aes_hw_|aesni_|gcm_|GFp_|CRYPTO_|x25519_|ChaCha)|\|ngx_ssl|\|ssl_sock_"),
    ("HTTP/2", r"\|<?(h2|hyper|hyper_util|http|http_body|http_body_util|httparse|tonic)::"
     r"|\|ngx_http_v2|\|ngx_http_grpc|\|ngx_http_huff|\|(h2_|h2c_|h2s_|hpack_|huff_)"),
    ("checks", r"\|<?jisr::(policy|consent|catalogue|identity|gateway::exchange::prepare|gateway::metadata)"),
    ("audit", r"\|<?jisr::audit::"),
    ("telemetry", r"\|<?(jisr::telemetry|tracing|tracing_core|tracing_subscriber|metrics)::"),
    ("runtime / event loop", r"\|<?(tokio|mio|parking_lot|parking_lot_core|crossbeam_\w+|std::sys|std::thread)::"
     r"|\|(ngx_epoll|ngx_event|ngx_process_events|ngx_\w*process_cycle|ngx_handle_\w+_event|ngx_unix_"
     r"|ngx_readv|ngx_writev|ngx_linux_|ngx_recv|ngx_send|ngx_time_update|ngx_\w*timer"
     r"|run_poll_loop|_do_poll|fd_|run_tasks_from_lists|process_runnable_tasks|task_|tasklet_|__task_"
     r"|__tasklet_|wake_expired_tasks|sock_conn_|raw_sock_|clock_|ha_thread|thread_|main$)"),
    ("proxying", r"\|<?(jisr|tower|tower_http|tower_layer|tower_service)::"
     r"|\|ngx_(?!palloc|pnalloc|pcalloc|alloc|calloc|pfree|create_pool|destroy_pool|reset_pool|cpymem)"
     r"|\|(process_stream|stream_|sc_|cs_|si_|channel_|htx_|http_|back_|connect_server|conn_|srv_|"
     r"proxy_|pendconn_|b_|sess_|session_|xprt_|mux_|appctx_|chn_|ci_|co_)"),
]
SHA256 = re.compile(r"sha2::sha256::compress256|sha256_block_data_order")
COMPILED = [(g, re.compile(p)) for g, p in GROUPS]
ORDER = ["TLS", "HTTP/2", "proxying", "runtime / event loop", "checks", "audit", "telemetry",
         "unattributed"]


def group_of(obj, name):
    key = f"{obj}|{name}"
    for group, rx in COMPILED:
        if rx.search(key):
            return group
    return None


def parse(path):
    """Self cost per function and inclusive cost per call arc."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    self_cost = defaultdict(int)
    arcs = defaultdict(int)
    obj_of = {}
    ob = fn = cob = cfn = None
    pending_call = False

    def name(kind, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), text)

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_call:
                    arcs[(fn, cfn)] += cost
                    pending_call = False
                else:
                    self_cost[fn] += cost
                continue
            key, _, val = line.partition("=")
            if key == "ob":
                ob = name("ob", val)
            elif key == "fn":
                fn = name("fn", val)
                obj_of.setdefault(fn, ob)
                cob = ob
            elif key == "cob":
                cob = name("ob", val)
            elif key == "cfn":
                cfn = name("fn", val)
                obj_of.setdefault(cfn, cob)
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", val)
            elif key == "calls":
                pending_call = True
    return self_cost, arcs, obj_of


def attribute(self_cost, arcs, obj_of):
    callers = defaultdict(list)
    for (caller, callee), cost in arcs.items():
        if caller != callee and cost > 0:
            callers[callee].append((caller, cost))
    memo = {}

    def share(fn, depth):
        """Where fn's own instructions go: {group: fraction}."""
        g = group_of(obj_of.get(fn) or "", fn or "")
        if g:
            return {g: 1.0}
        if fn in memo:
            return memo[fn]
        if depth > 40 or not callers.get(fn):
            return {"unattributed": 1.0}
        memo[fn] = {"unattributed": 1.0}  # a cycle back here reaches no group
        total = sum(c for _, c in callers[fn])
        out = defaultdict(float)
        for caller, cost in callers[fn]:
            for grp, frac in share(caller, depth + 1).items():
                out[grp] += frac * cost / total
        memo[fn] = dict(out)
        return memo[fn]

    groups = defaultdict(float)
    for fn, cost in self_cost.items():
        for grp, frac in share(fn, 0).items():
            groups[grp] += cost * frac
    return groups


def main():
    path = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    label = sys.argv[3] if len(sys.argv) > 3 else path.rsplit("/", 1)[-1]
    self_cost, arcs, obj_of = parse(path)
    groups = attribute(self_cost, arcs, obj_of)
    total = sum(groups.values())
    # SHA-256 runs valgrind's portable path (no SHA extensions under
    # valgrind): shown apart, as it is inside the groups above.
    sha = sum(c for fn, c in self_cost.items() if fn and SHA256.search(fn))
    print(f"| per call (instructions) | {label} |")
    print("| --- | ---: |")
    for g in ORDER:
        v = groups.get(g, 0.0)
        print(f"| {g} | {v / calls:,.0f} ({100 * v / total:.0f} %) |")
    print(f"| whole process | {total / calls:,.0f} |")
    print(f"| of which SHA-256 compression (self, within the groups) | {sha / calls:,.0f} |")


if __name__ == "__main__":
    main()
