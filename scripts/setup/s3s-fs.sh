#!/usr/bin/env bash
# s3s-fs, a second S3-compatible loopback server (Rust, tokio, serves requests in
# parallel), for the bench's `--backends s3s` only: the follow bench uses it to measure the
# follower against a server that does not queue reads behind a store, as moto (one Python
# process) does. The test suite does not need it, and scripts/test.sh does not run this.
#
# Installs into ${DATOMS_S3S_FS_ROOT:-$HOME/.cache/datoms-s3s-fs} (binary: bin/s3s-fs),
# outside the clone. Idempotent: does nothing when that version is there.
# 0.14.1 is the newest release that builds with rustc 1.95 (later ones need 1.96).
set -euo pipefail

VERSION="0.14.1"
root="${DATOMS_S3S_FS_ROOT:-$HOME/.cache/datoms-s3s-fs}"
bin="$root/bin/s3s-fs"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$VERSION"; then
    echo "s3s-fs $VERSION is installed at $bin"
    exit 0
fi

echo "installing s3s-fs $VERSION into $root (a few minutes)"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
CARGO_TARGET_DIR="$build" cargo install s3s-fs --version "$VERSION" --features binary \
    --locked --root "$root"
echo "s3s-fs $VERSION is installed at $bin"
