#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer, stable toolchain) for SECONDS
# each (default 10: the brief run CI makes from scripts/test.sh), one after the other,
# and prints the execs, exec/s and coverage (cov, ft) each reached.
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment:
#   DATOMS_FUZZ_TARGETS  targets to run (space-separated; default: all of `cargo fuzz list`)
#   DATOMS_FUZZ_RUNS     stop each target after this many execs instead (SECONDS is then
#                        only an upper bound), e.g. 10000000 for the figures in
#                        docs/reliability.md
#   DATOMS_FUZZ_KEEP     a directory to keep the inputs each run finds (<dir>/<target>);
#                        by default they go to a temporary directory and are dropped
#
# The seed corpora in fuzz/corpus/<target> are read, never written: new inputs go to the
# keep (or temporary) directory, so a brief run leaves the repository as it was. A crash
# is written to fuzz/artifacts/<target>/ (ignored by git) and fails the script once every
# target has run. Memory is bounded: -rss_limit_mb=2048 and -malloc_limit_mb=1024 fail a
# run that allocates more, as from a length field trusted before the bytes are read.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
export CARGO_TARGET_DIR="${DATOMS_FUZZ_TARGET_DIR:-$HOME/.cache/datoms-fuzz-target}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

bash scripts/setup/fuzz.sh >/dev/null
# -s none: no sanitizer (the crate forbids unsafe code); -a: debug assertions and
# overflow checks on, so an arithmetic overflow is a crash.
flags=(-s none -a)
cargo fuzz build "${flags[@]}"

targets="${DATOMS_FUZZ_TARGETS:-$(cargo fuzz list)}"
runs=()
if [ -n "${DATOMS_FUZZ_RUNS:-}" ]; then
    runs=(-runs="$DATOMS_FUZZ_RUNS")
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

failed=()
printf '\n%-14s %12s %9s %7s %7s %6s\n' target execs exec/s cov ft secs
for t in $targets; do
    found="${DATOMS_FUZZ_KEEP:+$DATOMS_FUZZ_KEEP/$t}"
    found="${found:-$work/$t}"
    mkdir -p "$found" "fuzz/corpus/$t"
    log="$work/$t.log"
    start=$(date +%s)
    if ! cargo fuzz run "${flags[@]}" "$t" "$found" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" "${runs[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -timeout=60 -print_final_stats=1 >"$log" 2>&1; then
        failed+=("$t")
        tail -n 40 "$log" >&2
    fi
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | awk '{print $2}')
    printf '%-14s %12s %9s %7s %7s %6s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "$secs"
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
