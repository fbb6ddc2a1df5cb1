#!/usr/bin/env bash
# Snapshot write and restore of N realistic nodes, old format (v2, one JSON
# document) beside the current one (v3, streamed sections), each phase in
# its own process so its peak RSS is its own. Release build.
#   bench/snapshot.sh [nodes] [runs]
set -euo pipefail
nodes=${1:-100000}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p caravan-bench >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/caravan-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for run in $(seq 1 "$runs"); do
  for format in v2 v3; do
    dir="$work/$format-$run"
    "$bin" snapshot-write "$dir" "$nodes" "$format"
    "$bin" snapshot-read "$dir"
    rm -rf "$dir"
  done
done
