#!/usr/bin/env bash
# Nodes benchmarks (issue 4): 10,000 simulated nodes against one server
# (time to register, server CPU and RSS at steady state, heartbeat latency),
# GET /v1/nodes with 10,000 nodes, 1,000 blocking queries woken by one
# change, and how many of 1,000 queries on different nodes one change wakes. Needs wrk (Debian). Everything runs on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${BENCH_DATA:-/work/caravan-bench-nodes}
NODES=${NODES:-10000}
RUN_SECONDS=${RUN_SECONDS:-150}
cargo build --release -p caravan -p caravan-bench
BIN=target/release/caravan
rm -rf "$DATA" && mkdir -p "$DATA"
# 200 heartbeats/s cluster-wide (Nomad's default is 50) gives 10,000 nodes a
# TTL of 50-100 s, so every node heartbeats during the run.
cat > "$DATA/server.hcl" <<HCL
server {
  max_heartbeats_per_second = 200
}
# The blocking benchmarks hold 1,000 connections from one address.
limits {
  http_max_conns_per_client = 0
}
HCL
$BIN agent -server -bootstrap-expect 1 -data-dir "$DATA/server" -bind 127.0.0.1 \
    -config "$DATA/server.hcl" -log-level WARN &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }

echo "== $NODES simulated nodes for ${RUN_SECONDS}s"
$BIN node-sim -servers 127.0.0.1:4647 -count "$NODES" -duration "${RUN_SECONDS}s" \
    -concurrency 64 > "$DATA/sim.json" &
SIM=$!
sleep 60
ticks_before=$(cpu_ticks)
sleep 30
ticks_after=$(cpu_ticks)
hz=$(getconf CLK_TCK)
echo "server CPU at steady state (60-90 s): $(( (ticks_after - ticks_before) * 100 / (30 * hz) ))% of one core"
echo "server RSS at steady state: $(rss_mb) MB"

# While the simulator keeps every node alive, the node table is steady.
echo "== GET /v1/nodes with $NODES nodes (4 connections, 10 s)"
wrk -t2 -c4 -d10s --latency http://127.0.0.1:4646/v1/nodes

echo "== GET /v1/nodes right after a change to the table (cold), 5 times"
NODE=$(curl -s 'http://127.0.0.1:4646/v1/nodes?per_page=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ID"])')
for value in ineligible eligible ineligible eligible ineligible; do
    curl -s -o /dev/null -XPOST "http://127.0.0.1:4646/v1/node/$NODE/eligibility" -d "{\"Eligibility\": \"$value\"}"
    curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:4646/v1/nodes
done

echo "== 1000 blocking queries woken by one change"
target/release/caravan-bench blocking-wakeup 127.0.0.1:4646 "$NODE" 1000

echo "== 1000 blocking queries on 1000 different nodes, one node changes (target: 1 woken)"
target/release/caravan-bench blocking-spread 127.0.0.1:4646 1000

wait $SIM
echo "simulator: $(cat "$DATA/sim.json")"
kill $SERVER; wait $SERVER || true
rm -rf "$DATA"
