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
COLD_SAMPLES=${COLD_SAMPLES:-7}
# Ports default to Nomad's; set them apart to run beside another agent.
HTTP_PORT=${HTTP_PORT:-4646}
RPC_PORT=${RPC_PORT:-4647}
SERF_PORT=${SERF_PORT:-4648}
# CARAVAN_RELEASE: a directory holding release caravan and caravan-bench
# already built (skips the build).
if [ -z "${CARAVAN_RELEASE:-}" ]; then
    cargo build --release -p caravan -p caravan-bench
    CARAVAN_RELEASE=target/release
fi
BIN=$CARAVAN_RELEASE/caravan
BENCH=$CARAVAN_RELEASE/caravan-bench
API=http://127.0.0.1:$HTTP_PORT
rm -rf "$DATA" && mkdir -p "$DATA"
# 200 heartbeats/s cluster-wide (Nomad's default is 50) gives 10,000 nodes a
# TTL of 50-100 s, so every node heartbeats during the run.
cat > "$DATA/server.hcl" <<HCL
server {
  max_heartbeats_per_second = 200
}
ports {
  http = $HTTP_PORT
  rpc  = $RPC_PORT
  serf = $SERF_PORT
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
$BIN node-sim -servers 127.0.0.1:$RPC_PORT -count "$NODES" -duration "${RUN_SECONDS}s" \
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
wrk -t2 -c4 -d10s --latency "$API/v1/nodes"

# Each sample changes one node (an eligibility write), then times the first
# list after it: the whole-list cache is stale, the per-node entries of the
# other nodes are not. Heartbeats from the simulator do not write (no
# status change), so the table moves only by these writes.
echo "== GET /v1/nodes right after one node changes (first request after the change), $COLD_SAMPLES times"
NODE=$(curl -s "$API/v1/nodes?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ID"])')
value=ineligible
for _ in $(seq 1 "$COLD_SAMPLES"); do
    curl -s -o /dev/null -XPOST "$API/v1/node/$NODE/eligibility" -d "{\"Eligibility\": \"$value\"}"
    curl -s -o /dev/null -w '%{time_total}\n' "$API/v1/nodes"
    if [ "$value" = ineligible ]; then value=eligible; else value=ineligible; fi
done | tee "$DATA/cold.txt"
echo "median: $(sort -n "$DATA/cold.txt" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s"

echo "== 1000 blocking queries woken by one change"
$BENCH blocking-wakeup 127.0.0.1:$HTTP_PORT "$NODE" 1000

echo "== 1000 blocking queries on 1000 different nodes, one node changes (target: 1 woken)"
$BENCH blocking-spread 127.0.0.1:$HTTP_PORT 1000

wait $SIM
echo "simulator: $(cat "$DATA/sim.json")"
kill $SERVER; wait $SERVER || true
rm -rf "$DATA"
