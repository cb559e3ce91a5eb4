#!/usr/bin/env bash
# The venv the orchestrator's example archives run in: .fanout/orch-venv on Python 3.11
# (/usr/bin/python3.11 when there, else python3.11 or python3 on PATH if it is 3.11;
# PYTHON=... overrides) with
# examples/orchestrator/requirements.txt, reinstalled only when that file (or the Python)
# changes. Prints the venv's bin directory as its only stdout line; logs go to stderr.
#
# Usage: examples/orchestrator/venv.sh        ->  /abs/path/.fanout/orch-venv/bin
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.fanout/orch-venv"
REQ="$ROOT/examples/orchestrator/requirements.txt"
STAMP="$VENV/.fanout-requirements.sha256"

if [ -z "${PYTHON:-}" ]; then
    # The system's interpreter first: the worker's sandbox runs the programs as user
    # nobody, which cannot reach an interpreter under a home directory (pyenv's in /root).
    if [ -x /usr/bin/python3.11 ]; then
        PYTHON=/usr/bin/python3.11
    elif command -v python3.11 >/dev/null 2>&1; then
        PYTHON=python3.11
    else
        PYTHON=python3
    fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || { echo "orch-venv: '$PYTHON' not found (PYTHON=... picks another)" >&2; exit 1; }
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "orch-venv: $PYTHON is $("$PYTHON" --version 2>&1), Python 3.11 wanted (PYTHON=... picks another)" >&2
    exit 1
fi

want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version, sys.executable)'; } | sha256sum | cut -d' ' -f1)"
# A venv whose interpreter no longer starts (its base Python moved or went) is rebuilt.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "orch-venv: $VENV is broken, recreating it" >&2
    rm -rf "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    # Another interpreter or other requirements: start from a fresh venv.
    rm -rf "$VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "orch-venv: creating $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; exit 1; }
    fi
    echo "orch-venv: installing examples/orchestrator/requirements.txt" >&2
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --only-binary=:all: -r "$REQ" >&2
    echo "$want" > "$STAMP"
fi
echo "$VENV/bin"
