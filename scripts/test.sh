#!/usr/bin/env bash
# Runs every test Caravan has, installing what the tests need first:
# the Python virtualenv with python-nomad (from PyPI) and cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "==> Rust tests (unit, integration, cluster)"
cargo nextest run --workspace --no-fail-fast

echo "==> python-nomad compatibility tests"
CARAVAN_BIN="$PWD/target/debug/caravan" target/pyenv/bin/python -m pytest -q tests/python
