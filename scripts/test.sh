#!/usr/bin/env bash
# Runs every test Caravan has, installing what the tests need first:
# the Python virtualenv with python-nomad (from PyPI) and cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean clone gains nothing from incremental artifacts, and they cost
# about 40% of the target directory's disk.
if [ "${CI:-}" = "true" ]; then
    export CARGO_INCREMENTAL=0
fi
echo "==> Disk free where the build goes: $(df -h . | awk 'NR==2 {print $4}')"

echo "==> Python virtualenv for the client compatibility tests"
if [ ! -x target/pyenv/bin/python ]; then
    mkdir -p target
    python3 -m venv target/pyenv
fi
target/pyenv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> Installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

echo "==> Building"
cargo build --workspace --all-targets
cargo build --release -p caravan

# README's run command, typed exactly as README writes it: it must start a
# working one-node cluster, or a newcomer's first command is broken.
echo "==> README's run command: cargo run --release -- agent -dev"
smoke_log=$(mktemp)
cargo run --release -- agent -dev >"$smoke_log" 2>&1 &
smoke_pid=$!
smoke_ok=false
for _ in $(seq 1 300); do
    if curl -fsS http://127.0.0.1:4646/v1/status/leader 2>/dev/null | grep -q ':'; then
        smoke_ok=true
        break
    fi
    if ! kill -0 "$smoke_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
kill -INT "$smoke_pid" 2>/dev/null || true
wait "$smoke_pid" 2>/dev/null || true
if [ "$smoke_ok" != true ]; then
    echo "README's run command did not answer /v1/status/leader:" >&2
    cat "$smoke_log" >&2
    exit 1
fi
rm -f "$smoke_log"

# The partition test runs server containers on a private Docker network,
# from an image built here (there is no registry): the release binary, its
# libraries and Debian's static busybox.
static_busybox() {
    local out
    out=$(ldd /bin/busybox 2>&1 || true)
    [[ "$out" == *"not a dynamic executable"* || "$out" == *"statically linked"* ]]
}
if docker info >/dev/null 2>&1; then
    if ! static_busybox; then
        echo "==> Installing Debian's busybox-static for the test image"
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
        fi
    fi
    echo "==> Building the local test image"
    ./scripts/build-test-image.sh
elif [ "${CI:-}" = "true" ]; then
    echo "CI=true but no Docker engine answers: the partition test needs one" >&2
    exit 1
else
    echo "==> No Docker engine: the partition test will report that it was skipped"
fi

echo "==> Module cycles (none allowed)"
python3 scripts/module-cycles.py crates/caravan-server crates/caravan-http crates/caravan-config

echo "==> Rust tests (unit, integration, cluster)"
cargo nextest run --workspace --no-fail-fast

echo "==> SDK doctests (nextest does not run doctests)"
cargo test --doc -p caravan-sdk

echo "==> python-nomad compatibility tests"
CARAVAN_BIN="$PWD/target/debug/caravan" target/pyenv/bin/python -m pytest -q tests/python
