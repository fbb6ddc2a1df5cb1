#!/usr/bin/env bash
# TLS benchmarks (issue 8): Raft writes/s and reads/s over HTTPS beside plain
# HTTP in the same run, and TLS handshakes/s. Needs Debian's `wrk` and the
# `openssl` command. Everything runs on loopback; every run is bounded.
#
# wrk cannot present a client certificate, so the TLS server here has
# `verify_https_client = false` (HTTPS with server authentication); its RPC
# port is mutual TLS as always.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/work/caravan-bench-tls}
DURATION=${DURATION:-10s}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p caravan
BIN=$PWD/target/release/caravan
rm -rf "$DATA"
mkdir -p "$DATA/certs"
(cd "$DATA/certs" && "$BIN" tls ca create >/dev/null && "$BIN" tls cert create -server >/dev/null)

start() { # name, extra config
    local dir="$DATA/$1"
    mkdir -p "$dir"
    printf '%s\nlimits {\n  http_max_conns_per_client = 0\n}\n' "$2" >"$dir/extra.hcl"
    "$BIN" agent -server -bootstrap-expect 1 -data-dir "$dir/data" -bind 127.0.0.1 \
        -log-level WARN -config "$dir/extra.hcl" &
    PID=$!
    sleep 2
}
stop() { kill "$PID"; wait "$PID" || true; }
trap 'kill $PID 2>/dev/null || true' EXIT

TLS_HCL="tls {
  http = true
  rpc = true
  ca_file = \"$DATA/certs/nomad-agent-ca.pem\"
  cert_file = \"$DATA/certs/global-server-nomad.pem\"
  key_file = \"$DATA/certs/global-server-nomad-key.pem\"
  verify_server_hostname = true
  verify_https_client = false
}"

for mode in plain tls; do
    if [ "$mode" = plain ]; then start plain ""; URL=http://127.0.0.1:4646
    else start tls "$TLS_HCL"; URL=https://127.0.0.1:4646; fi
    echo "== $mode: scheduler-config PUTs (Raft writes), 32 connections, $DURATION"
    wrk -t2 -c32 -d"$DURATION" --latency -s bench/put_scheduler.lua "$URL"
    echo "== $mode: GET /v1/operator/scheduler/configuration, 32 connections, $DURATION"
    wrk -t2 -c32 -d"$DURATION" --latency "$URL/v1/operator/scheduler/configuration"
    if [ "$mode" = tls ]; then
        echo "== tls: new TLS handshakes, one client, 10 s (openssl s_time -new)"
        openssl s_time -connect 127.0.0.1:4646 -new -time 10 \
            -CAfile "$DATA/certs/nomad-agent-ca.pem" 2>/dev/null | grep -E "connections|bytes"
    fi
    stop
done
rm -rf "$DATA"
