#!/usr/bin/env bash
# Create (or refresh) the Python virtualenv at <repo>/.venv with the pinned tools
# from localstack/requirements.txt. Idempotent: pip runs only when the
# requirements file (or the interpreter) changed since the last successful install.
#
#   PYTHON=python3.12 bash localstack/venv.sh   # pick another interpreter
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/localstack/requirements.txt"
STAMP="$VENV/.fanout-requirements.sha256"
PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "venv.sh: '$PYTHON' not found; install Python 3.9 or newer" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
    echo "venv.sh: $("$PYTHON" --version 2>&1) is too old; Python 3.9 or newer is needed" >&2
    exit 1
fi

# What the stamp records: the requirements and the interpreter that built the venv.
want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"

# A venv whose interpreter no longer starts (moved repo, removed Python) is rebuilt.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "venv.sh: $VENV is broken; recreating it"
    rm -rf "$VENV"
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "venv.sh: creating $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "venv.sh: '$PYTHON -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2
        exit 1
    fi
fi

echo "venv.sh: installing localstack/requirements.txt"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ"
echo "$want" > "$STAMP"
echo "venv.sh: ready ($("$VENV/bin/python" --version), $("$VENV/bin/cfn-lint" --version))"
