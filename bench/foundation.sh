#!/usr/bin/env bash
# Foundation benchmarks (issue 2): cold start and idle RSS, Raft write
# throughput against the disk's fsync rate and etcd, and read throughput.
# Needs: wrk and etcd-server (Debian packages). Everything runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/work/caravan-bench}
cargo build --release -p caravan
BIN=target/release/caravan

echo "== cold start and idle RSS (agent -dev, 10 runs)"
python3 bench/cold_start.py "$BIN" 10

echo "== disk fsyncs/s (one writer, 128-byte writes)"
mkdir -p "$DATA"
python3 bench/fsync_rate.py "$DATA" 5

echo "== Caravan: scheduler-config PUTs, 32 connections, 10 s"
rm -rf "$DATA/server-data"
$BIN agent -server -bootstrap-expect 1 -data-dir "$DATA/server-data" -bind 127.0.0.1 -log-level WARN &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
sleep 2
wrk -t2 -c32 -d10s --latency -s bench/put_scheduler.lua http://127.0.0.1:4646
kill $PID; wait $PID || true

echo "== etcd: /v3/kv/put of the same size, 32 connections, 10 s"
rm -rf "$DATA/etcd-data"
etcd --data-dir "$DATA/etcd-data" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    >/dev/null 2>&1 &
PID=$!
sleep 3
wrk -t2 -c32 -d10s --latency -s bench/put_etcd.lua http://127.0.0.1:2379
kill $PID; wait $PID || true

echo "== reads against agent -dev, 32 connections, 10 s each"
$BIN agent -dev -log-level WARN &
PID=$!
sleep 2
for path in agent/self operator/scheduler/configuration; do
    echo "-- $path"
    wrk -t2 -c32 -d10s --latency "http://127.0.0.1:4646/v1/$path"
done
kill $PID; wait $PID || true
rm -rf "$DATA"
