#!/usr/bin/env bash
# Builds the browser replica: datoms-wasm for wasm32-unknown-unknown with Debian's
# rustc-web (std built from rust-web-src with -Zbuild-std, linked by lld-22's wasm-ld),
# then wasm-bindgen into the JavaScript package, datoms-wasm/js/pkg/.
#
#   scripts/wasm.sh build    release build + bindings (what the tests and the package use)
#   scripts/wasm.sh size     build, then print the module's size, raw and gzip -9
#
# Prerequisites: scripts/setup/wasm.sh. The wasm build has its own target directory,
# ${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}-wasm32 (or $DATOMS_WASM_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}"
tools="${DATOMS_WASM_TOOLS:-$(dirname "$target")/datoms-wasm-tools}"
wasm_target="${DATOMS_WASM_TARGET_DIR:-$target-wasm32}"
out="datoms-wasm/js/pkg"

build() {
    # Size over speed where it costs little: one codegen unit, LTO, opt-level 3 kept
    # (queries are the hot path), panics abort (no unwinding tables).
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_DIR="$wasm_target" \
    CARGO_PROFILE_RELEASE_LTO=true \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
        /usr/bin/cargo build --release --locked \
        -Zbuild-std=std,panic_abort \
        --target wasm32-unknown-unknown -p datoms-wasm
    rm -rf "$out"
    # The name section (function names for stack traces, ~600 KB raw) and the
    # producers section are left out of the shipped module.
    "$tools/bin/wasm-bindgen" --target web --out-dir "$out" \
        --remove-name-section --remove-producers-section \
        "$wasm_target/wasm32-unknown-unknown/release/datoms_wasm.wasm"
    echo "built $out"
}

case "${1:-build}" in
    build) build ;;
    size)
        build
        raw=$(stat -c %s "$out/datoms_wasm_bg.wasm")
        gz=$(gzip -9 -c "$out/datoms_wasm_bg.wasm" | wc -c)
        echo "datoms_wasm_bg.wasm: $raw bytes raw, $gz bytes gzip -9"
        ;;
    *)
        echo "usage: scripts/wasm.sh [build|size]" >&2
        exit 2
        ;;
esac
