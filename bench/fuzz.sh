#!/usr/bin/env bash
# Fuzzing (security issue "bounded input, everywhere"): runs the proptest
# properties of the filter parser/evaluator (crates/caravan-filter/tests/
# fuzz.rs) and of the request body decoder (crates/caravan-http/src/decode/
# fuzz.rs) in rounds of CASES cases per property, each round with a fresh
# random seed, until SECONDS_TOTAL have passed (at least one round). Prints
# executions (cases run), crashes (failed properties: a panic, a stack
# overflow or a broken property) and the duration.
#
#   bench/fuzz.sh                      # ~120 s, 2000 cases per property per round
#   SECONDS_TOTAL=600 CASES=5000 bench/fuzz.sh
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SECONDS_TOTAL:-120}
CASES=${CASES:-2000}
LOG=${FUZZ_LOG:-${TMPDIR:-/tmp}/caravan-fuzz.log}
: > "$LOG"

# Build once, outside the clock.
cargo test -p caravan-filter --test fuzz --no-run -q
cargo test -p caravan-http --lib --no-run -q

executions=0
crashes=0
rounds=0
start=$(date +%s)
while :; do
    for suite in "-p caravan-filter --test fuzz" "-p caravan-http --lib decode::fuzz"; do
        # shellcheck disable=SC2086
        output=$(CARAVAN_FUZZ_CASES=$CASES cargo test -q $suite -- --test-threads=2 2>&1)
        echo "$output" >> "$LOG"
        passed=$(echo "$output" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | head -1)
        failed=$(echo "$output" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | head -1)
        if [ -z "$passed" ]; then
            # No summary line: the test binary itself died (stack overflow,
            # abort). Count it as one crash.
            passed=0
            failed=1
        fi
        # A failed property ran up to CASES cases before it failed; count
        # only the properties that passed as full rounds.
        executions=$((executions + passed * CASES))
        crashes=$((crashes + failed))
    done
    rounds=$((rounds + 1))
    elapsed=$(( $(date +%s) - start ))
    [ "$elapsed" -ge "$SECONDS_TOTAL" ] && break
done
echo "commit:     $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
echo "machine:    $(nproc) cores"
echo "rounds:     $rounds ($CASES cases per property per round)"
echo "executions: $executions"
echo "crashes:    $crashes"
echo "duration:   ${elapsed}s"
echo "log:        $LOG"
[ "$crashes" -eq 0 ]
