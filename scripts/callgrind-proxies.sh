#!/usr/bin/env bash
# Instructions per call of nginx and HAProxy as plain mutual-TLS proxies,
# counted the way scripts/callgrind-per-call.sh counts Jisr's: the demo's
# providers (`jisr demo --serve`), the proxy under callgrind, 500 warm-up
# calls, counters zeroed, 3,000 measured calls of the same load as agency
# `education`. The configurations are those `jisr bench --compare`
# generates (src/tools/bench/nginx.rs, haproxy.rs), except that nginx runs
# as one process (`master_process off`: callgrind follows one process) and
# HAProxy with `nbthread 1` for the same reason (valgrind runs one thread
# at a time anyway).
# Usage: scripts/callgrind-proxies.sh BIN OUT-PREFIX [nginx] [haproxy]
# (CONNS, INFLIGHT: load shape). Needs valgrind, nginx (Debian nginx-light)
# and haproxy. Prints instructions per call for each proxy.
set -u
BIN=$1; OUT=$2; shift 2
PROXIES=${*:-nginx haproxy}
D=$(mktemp -d /tmp/cgp.XXXX)
"$BIN" demo --serve --dir "$D" > "$D/demo.log" 2>&1 &
DEMO=$!
for i in $(seq 1 100); do [ -s "$D/gateway.addr" ] && break; sleep 0.2; done
upstream() { awk -F'"' -v want="$1" '/^id = /{id=$2} /^upstream = /{if (id == want) print $2}' "$D/jisr.toml"; }
CIVIL=$(upstream civil-status); TAX=$(upstream tax)
PKI=$D/pki
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

nginx_conf() {
  mkdir -p "$D/nginx"
  cat > "$D/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
pid $D/nginx/nginx.pid;
error_log $D/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $D/nginx/client_body;
    proxy_temp_path $D/nginx/proxy;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_concurrent_streams 128;
    upstream provider0 { server $CIVIL; keepalive 1024; keepalive_requests 100000000; keepalive_timeout 300s; }
    upstream provider1 { server $TAX; keepalive 1024; keepalive_requests 100000000; keepalive_timeout 300s; }
    server {
        listen 127.0.0.1:$PORT ssl http2;
        ssl_protocols TLSv1.3;
        ssl_certificate $PKI/gateway.crt;
        ssl_certificate_key $PKI/gateway.key;
        ssl_client_certificate $PKI/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 2;
        grpc_ssl_protocols TLSv1.3;
        grpc_ssl_certificate $PKI/gateway.crt;
        grpc_ssl_certificate_key $PKI/gateway.key;
        grpc_ssl_trusted_certificate $PKI/ca.crt;
        grpc_ssl_verify on;
        grpc_ssl_verify_depth 2;
        grpc_ssl_name localhost;
        grpc_ssl_session_reuse on;
        location /ma.civilstatus.v1.CivilStatus/ { grpc_pass grpcs://provider0; }
        location /ma.tax.v1.TaxRecords/ { grpc_pass grpcs://provider1; }
    }
}
EOF
  echo nginx -p "$D/nginx" -c "$D/nginx/nginx.conf" -e stderr
}

haproxy_conf() {
  mkdir -p "$D/haproxy"
  cat "$PKI/gateway.crt" "$PKI/gateway.key" > "$D/haproxy/gateway.pem"
  local pem=$D/haproxy/gateway.pem
  cat > "$D/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    tune.h2.max-concurrent-streams 128
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
frontend grpc
    bind 127.0.0.1:$PORT ssl crt $pem ca-file $PKI/ca.crt verify required alpn h2
    use_backend provider0 if { path_beg /ma.civilstatus.v1.CivilStatus/ }
    use_backend provider1 if { path_beg /ma.tax.v1.TaxRecords/ }
    default_backend provider0
backend provider0
    server p0 $CIVIL ssl verify required ca-file $PKI/ca.crt crt $pem alpn h2 sni str(localhost) verifyhost localhost
backend provider1
    server p1 $TAX ssl verify required ca-file $PKI/ca.crt crt $pem alpn h2 sni str(localhost) verifyhost localhost
EOF
  echo haproxy -db -f "$D/haproxy/haproxy.cfg"
}

load() { # load N LABEL
  "$BIN" bench --gateway "127.0.0.1:$PORT" --pki "$PKI" --as education --requests "$1" \
    --connections "${CONNS:-2}" --in-flight "${INFLIGHT:-8}" --warmup 0s > "$D/$2.txt" 2>&1
}

for PROXY in $PROXIES; do
  CMD=$(${PROXY}_conf)
  valgrind --tool=callgrind --callgrind-out-file="$OUT.$PROXY.%p" $CMD > "$D/$PROXY.log" 2>&1 &
  VG=$!
  for i in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.5; done
  load 500 "$PROXY-warm"
  callgrind_control -z $VG >/dev/null 2>&1
  load 3000 "$PROXY-run"
  callgrind_control -d $VG >/dev/null 2>&1
  kill $VG; wait $VG 2>/dev/null
  grep -h "^totals:" "$OUT.$PROXY.$VG.1" | awk -v p="$PROXY" '{s+=$2} END {printf "%s: instructions per call: %.0f (total %d over 3000 calls)\n", p, s/3000, s}'
  grep -E "^jisr " "$D/$PROXY-run.txt"
done
kill $DEMO; wait $DEMO 2>/dev/null
echo "dir: $D"
