#!/usr/bin/env bash
# The S3-compatible test server for backend-s3: moto's server (moto[server]), pinned,
# in its own Python venv outside the git clone, beside the cargo target directory.
# Idempotent: does nothing when the pinned version is already installed there.
#
# The test harness (backend-s3/tests/common/server.rs) looks for the venv at the same
# path, or at $DATOMS_MOTO_VENV when set.
set -euo pipefail

MOTO_VERSION="5.2.5"
target="${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}"
venv="${DATOMS_MOTO_VENV:-$(dirname "$target")/datoms-moto-venv}"
stamp="$venv/.datoms-moto-$MOTO_VERSION"

if [ -f "$stamp" ] && [ -x "$venv/bin/moto_server" ]; then
    echo "moto[server] $MOTO_VERSION already installed in $venv"
    exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; backend-s3's tests need Python 3 for moto" >&2
    exit 1
fi

echo "installing moto[server]==$MOTO_VERSION into $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
"$venv/bin/python" -c "import moto.server, moto; assert moto.__version__ == '$MOTO_VERSION', moto.__version__"
touch "$stamp"
echo "installed moto[server] $MOTO_VERSION in $venv"
