#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (README command 2).
# Installs what the suite needs first, idempotently, then: format check, clippy with
# warnings as errors, every test of every crate (nextest), and the doc tests — all with
# every cargo feature on, so each backend is built once and `datoms::open` reaches all.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# ---- prerequisites (idempotent) -------------------------------------------------------
for s in scripts/setup/*.sh; do
    [ -e "$s" ] || continue
    step "setup: $s"
    bash "$s"
done

if ! command -v cargo-nextest >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

# The browser replica's module and JavaScript package (datoms-wasm/js/pkg), which
# datoms-wasm's tests run in node and headless chromium: they fail, rather than skip,
# when it is missing.
step "wasm build (scripts/wasm.sh)"
scripts/wasm.sh build
export DATOMS_WASM_REQUIRED=1

# ---- checks ----------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "tests (nextest)"
cargo nextest run --workspace --all-features --no-fail-fast

step "doc tests"
cargo test --workspace --all-features --doc

step "API docs (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

# The fuzz targets (fuzz/, a workspace of its own) each run briefly from their kept
# corpora: a regression of any input there fails the suite. Their own target directory,
# as their build flags differ. Longer runs: scripts/fuzz.sh SECONDS.
step "fuzz targets, ${DATOMS_FUZZ_SECONDS:-10} s each"
DATOMS_FUZZ_TARGET_DIR="${DATOMS_FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz}" \
    scripts/fuzz.sh "${DATOMS_FUZZ_SECONDS:-10}"
