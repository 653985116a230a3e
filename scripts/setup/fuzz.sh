#!/usr/bin/env bash
# cargo-fuzz (libFuzzer), for the fuzz targets in fuzz/ (scripts/fuzz.sh). It runs on the
# stable toolchain: scripts/fuzz.sh sets RUSTC_BOOTSTRAP=1 for the nightly-only
# sanitizer flags and passes `-s none` (no sanitizer: Rust code here forbids unsafe).
#
# Idempotent: does nothing when the pinned version is installed.
set -euo pipefail

CARGO_FUZZ_VERSION="0.13.2"

if command -v cargo-fuzz >/dev/null 2>&1 &&
    [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" = "$CARGO_FUZZ_VERSION" ]; then
    echo "cargo-fuzz $CARGO_FUZZ_VERSION is installed"
    exit 0
fi

echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
