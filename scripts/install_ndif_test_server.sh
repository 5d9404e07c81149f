#!/usr/bin/env bash
# Install the NDIF API service (PyPI `ndif` 0.1.2) for the loopback integration
# tests in tests/remote, into a private directory (default: .ndif-site/ in the
# repository root, which the tests look for; override with NDIF_SITE).
#
# - ndif declares Python >= 3.12 but its API service imports on 3.11, so it is
#   installed with --ignore-requires-python.
# - Everything is installed with --no-deps into --target, so nothing in the
#   system site-packages (pydantic, torch, nnsight ...) is shadowed or changed.
# - ndif's API service imports boto3 (object storage), so boto3 and its own dependencies are listed too.
# - Redis: the Debian `redis-server` when apt-get can install it; the PyPI
#   `fakeredis` TCP server (installed into the same directory) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
SITE="${NDIF_SITE:-.ndif-site}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m pip install --disable-pip-version-check -q --no-deps --ignore-requires-python \
    --upgrade --target "$SITE" \
    ndif==0.1.2 \
    fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 websockets==17.4 \
    python-multipart==0.0.34 redis==8.1.0 annotated-doc==0.0.7 opentelemetry-api==1.45.2 \
    fakeredis==2.40.0 sortedcontainers==2.4.0 \
    boto3==1.44.8 botocore==1.44.8 s3transfer==0.19.3 jmespath==1.1.0 python-dateutil==4.0.0 six==1.17.0

if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get install -y -q redis-server >/dev/null 2>&1 \
            || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1)) \
            || echo "redis-server not installed; the tests will use fakeredis" >&2
    else
        echo "no apt-get as root; the tests will use fakeredis" >&2
    fi
fi

PYTHONPATH="$SITE" "$PYTHON" -c "import ndif.services.api.app, uvicorn, fakeredis" \
    && echo "NDIF test server installed in $SITE"
