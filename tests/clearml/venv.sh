#!/usr/bin/env bash
# The venv of the ClearML end-to-end run: .venv-clearml on python3.11 (PYTHON to
# override) with tests/clearml/requirements.txt, reinstalled only when that file (or the
# Python) changes. Prints the venv's python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
VENV="$ROOT/.venv-clearml"
REQ="$ROOT/tests/clearml/requirements.txt"
STAMP="$VENV/.fanout-requirements.sha256"
command -v "$PYTHON" >/dev/null 2>&1 || { echo "clearml: '$PYTHON' not found (PYTHON=... picks another)" >&2; exit 1; }
want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        echo "clearml: creating $VENV" >&2
        "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; exit 1; }
    fi
    echo "clearml: installing tests/clearml/requirements.txt" >&2
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ" >&2
    echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
