#!/usr/bin/env bash
# The S3-compatible test server of backend-s3: moto's server (moto[server], pinned) in a
# Python venv of its own, outside the git clone, beside the cargo target directory:
#   ${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}/../datoms-moto-venv
# or $DATOMS_MOTO_VENV when set. backend-s3's test harness (tests/common/mod.rs) looks
# in the same place, starts the server on a free port of 127.0.0.1 and stops it.
#
# Idempotent: does nothing when that venv already has the pinned version.
set -euo pipefail

MOTO_VERSION="5.2.5"
target="${CARGO_TARGET_DIR:-$HOME/.cache/datoms-target}"
venv="${DATOMS_MOTO_VENV:-$(dirname "$target")/datoms-moto-venv}"

installed() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import moto, moto.server, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" \
            >/dev/null 2>&1
}

if installed; then
    echo "moto[server] $MOTO_VERSION is installed in $venv"
    exit 0
fi

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found: backend-s3's tests need Python 3 (3.9+) for moto" >&2
    exit 1
fi

echo "installing moto[server]==$MOTO_VERSION into $venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
# Its dependencies pinned too (as resolved on CPython 3.11, 2026-11), so that a new
# release of Werkzeug or botocore cannot change the server under the tests.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
cat >"$constraints" <<'PINS'
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
attrs==26.1.0
aws-xray-sdk==2.15.0
blinker==1.9.0
boto3==1.44.8
botocore==1.44.8
certifi==2026.10.19.post1
cffi==2.1.1
cfn-lint==1.58.0
charset-normalizer==3.5.3
click==8.5.1
cryptography==50.0.2
docker==7.2.0
Flask==3.1.3
flask-cors==6.0.5
graphql-core==3.3.2
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
joserfc==1.8.0
jsonpatch==1.48
jsonpath-ng==1.16.0
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
lazy-object-proxy==1.13.0
MarkupSafe==3.0.4
mpmath==1.3.0
networkx==3.6.1
openapi-schema-validator==0.9.0
openapi-spec-validator==0.9.0
pathable==0.6.0
py-partiql-parser==0.6.3
pycparser==3.12
pydantic==2.14.4
pydantic-settings==2.16.3
pydantic_core==2.50.5
pyparsing==3.3.3
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
PyYAML==6.0.4
referencing==0.37.0
regex==2026.11.19
requests==2.34.2
responses==0.26.3
rfc3339-validator==0.1.4
rpds-py==2026.9.1
s3transfer==0.19.3
six==1.17.0
sympy==1.14.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
Werkzeug==3.1.9
wrapt==2.5.2
xmltodict==1.0.4
PINS
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --constraint "$constraints" "moto[server]==$MOTO_VERSION"
if ! installed; then
    echo "error: moto[server] $MOTO_VERSION did not install into $venv" >&2
    exit 1
fi
echo "installed moto[server] $MOTO_VERSION in $venv"
