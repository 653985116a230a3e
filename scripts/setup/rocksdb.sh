#!/usr/bin/env bash
# Build prerequisites of backend-rocks (the `rocksdb` crate builds a bundled RocksDB from
# source): a C++ compiler for RocksDB itself, and libclang for bindgen, which generates the
# C API bindings at build time. Clang's builtin headers (stddef.h…) come with libclang-dev
# (through libclang-common-N-dev), so the `clang` driver itself is not needed.
#
# Idempotent: installs only what is missing, runs `apt-get update` only when something must
# be installed, and is a no-op (no network, no root needed) when everything is there.
set -euo pipefail

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
installed libclang-dev || missing+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || missing+=(g++)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "rocksdb build prerequisites present"
    exit 0
fi

echo "installing rocksdb build prerequisites: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
