#!/usr/bin/env bash
# Long property-test runs of every parser that takes outside input (tests/it/fuzz.rs):
# the same properties `cargo test` runs a few hundred cases of, here CASES of each.
# A failure is shrunk to a minimal input and kept in proptest-regressions/it/fuzz.txt, which
# every later `cargo test` replays first: commit it with the fix and a regression test named
# after the bug. Usage: bench/fuzz.sh [CASES]   (default 100000; the package test gets CASES/100)
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${1:-100000}
echo "== $CASES cases per property ($(date -u +%H:%M) UTC; $(uptime))"
start=$(date +%s)
PROPTEST_CASES=$CASES cargo test --locked --test it fuzz:: -- --skip damaged_packages
PROPTEST_CASES=$((CASES / 100 > 48 ? CASES / 100 : 48)) cargo test --locked --test it fuzz::damaged_packages
echo "== done in $(( $(date +%s) - start )) s; failures (if any) are in proptest-regressions/"
