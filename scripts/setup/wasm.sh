#!/usr/bin/env bash
# What the browser replica (datoms-wasm) needs to build and test:
# - Debian's web toolchain: rustc-web, cargo-web and rust-web-src (a rustc that can build
#   std for wasm32-unknown-unknown with -Zbuild-std, as `rustup target add` cannot
#   download here), lld-22 (wasm-ld), and chromium for the headless-browser test;
# - wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock,
#   installed with cargo into a cache beside the cargo target directory:
#     ${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}/../datoms-wasm-tools/bin
#   (or $DATOMS_WASM_TOOLS/bin), where scripts/wasm.sh looks for it.
# node (20+) is assumed, as for the rest of the suite.
#
# Idempotent: does nothing when everything is there at the right version.
set -euo pipefail
cd "$(dirname "$0")/../.."

target="${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}"
tools="${DATOMS_WASM_TOOLS:-$(dirname "$target")/datoms-wasm-tools}"

packages=(rustc-web cargo-web rust-web-src lld-22 chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "rustc-web, cargo-web, rust-web-src, lld-22 and chromium are installed"
fi

# The wasm-bindgen crate's version, from the lock file (the crate pins it exactly).
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$version" ]; then
    echo "error: no wasm-bindgen in Cargo.lock" >&2
    exit 1
fi
if [ -x "$tools/bin/wasm-bindgen" ] && [ "$("$tools/bin/wasm-bindgen" --version)" = "wasm-bindgen $version" ]; then
    echo "wasm-bindgen-cli $version is installed in $tools"
    exit 0
fi
echo "installing wasm-bindgen-cli $version into $tools"
mkdir -p "$tools"
# Without --locked: the CLI's own lock file pins versions this registry may not carry.
CARGO_TARGET_DIR="$tools/build" cargo install wasm-bindgen-cli --version "$version" --root "$tools" --force
rm -rf "$tools/build"
"$tools/bin/wasm-bindgen" --version
