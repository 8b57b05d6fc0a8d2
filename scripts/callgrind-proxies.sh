#!/usr/bin/env bash
# Instructions per call of nginx and HAProxy as plain mutual-TLS proxies,
# counted the way scripts/callgrind-per-call.sh counts Jisr's: the demo's
# providers (`jisr demo --serve`), the proxy under callgrind, 500 warm-up
# calls, counters zeroed, 3,000 measured calls of the same load as agency
# `education`. The configurations are those `jisr bench --compare`
# generates (src/tools/bench/nginx.rs; HAProxy's is printed by
# `jisr bench --print-haproxy-config`), except that nginx runs as one
# process (`master_process off`: callgrind follows one process) and HAProxy
# with `nbthread 1` for the same reason (valgrind runs one thread at a time
# anyway).
# Usage: scripts/callgrind-proxies.sh BIN OUT-PREFIX [nginx] [haproxy]
# (CONNS, INFLIGHT: load shape). Needs valgrind, nginx (Debian nginx-light)
# and haproxy. Prints instructions per call for each proxy. With SYSCALLS=1
# the proxies run natively and scripts/syscalls-per-call.sh counts their
# system calls over the measured calls instead.
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
  # The configuration `bench --compare` runs, from the tool itself, with
  # one thread (see above).
  mkdir -p "$D/haproxy"
  "$BIN" bench --print-haproxy-config "127.0.0.1:$PORT" --dir "$D" --haproxy-threads 1 \
    --in-flight "${INFLIGHT:-8}" --upstream "ma.civilstatus.v1.CivilStatus=$CIVIL" \
    --upstream "ma.tax.v1.TaxRecords=$TAX" > "$D/haproxy/haproxy.cfg" || exit 1
  echo haproxy -db -f "$D/haproxy/haproxy.cfg"
}

load() { # load N LABEL
  "$BIN" bench --gateway "127.0.0.1:$PORT" --pki "$PKI" --as education --requests "$1" \
    --connections "${CONNS:-2}" --in-flight "${INFLIGHT:-8}" --warmup 0s > "$D/$2.txt" 2>&1
}

for PROXY in $PROXIES; do
  CMD=$(${PROXY}_conf)
  [ -n "$CMD" ] || { echo "$PROXY: no configuration (see above)" >&2; continue; }
  RUN="valgrind --tool=callgrind --callgrind-out-file=$OUT.$PROXY.%p"
  [ "${SYSCALLS:-0}" = 1 ] && RUN=
  $RUN $CMD > "$D/$PROXY.log" 2>&1 &
  VG=$!
  for i in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.5; done
  load 500 "$PROXY-warm"
  if [ "${SYSCALLS:-0}" = 1 ]; then
    echo -n "$PROXY: "
    "$(dirname "$0")/syscalls-per-call.sh" $VG 3000 bash -c "$(declare -f load); BIN='$BIN' PORT=$PORT PKI='$PKI' D='$D' CONNS=${CONNS:-2} INFLIGHT=${INFLIGHT:-8} load 3000 $PROXY-run" | grep "per call"
    kill $VG; wait $VG 2>/dev/null
  else
    callgrind_control -z $VG >/dev/null 2>&1
    load 3000 "$PROXY-run"
    callgrind_control -d $VG >/dev/null 2>&1
    kill $VG; wait $VG 2>/dev/null
    grep -h "^totals:" "$OUT.$PROXY.$VG.1" | awk -v p="$PROXY" '{s+=$2} END {printf "%s: instructions per call: %.0f (total %d over 3000 calls)\n", p, s/3000, s}'
  fi
  grep -E "^jisr " "$D/$PROXY-run.txt"
done
kill $DEMO; wait $DEMO 2>/dev/null
echo "dir: $D"
