#!/usr/bin/env bash
# The Datascript peer of the benchmark harness (bench/peer): `npm ci` from its lockfile,
# which pins datascript. The bench crate's quick test runs the peer, so it must be
# installed before the tests.
#
# Idempotent: runs `npm ci` only when bench/peer/node_modules is missing or
# package-lock.json changed since the last install (its hash is kept in node_modules);
# otherwise no network and nothing written. Installs Node.js and npm from Debian's
# packages first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/../../bench/peer"

stamp=node_modules/.datoms-bench-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -f node_modules/datascript/package.json ]; then
    echo "bench peer: datascript installed, lockfile unchanged"
    exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bench peer: installing Node.js and npm"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends nodejs npm
fi

echo "bench peer: npm ci (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "bench peer: installed datascript $(node -p 'require("datascript/package.json").version')"
