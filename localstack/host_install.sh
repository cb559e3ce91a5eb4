#!/usr/bin/env bash
# Install LocalStack for host mode (no Docker) under .fanout/localstack-host/, pinned:
#
#   venv/   localstack-core[runtime] $LOCALSTACK_VERSION on Python >= 3.13, installed by uv
#           with --exclude-newer at the release date (plain pip backtracks for minutes);
#   root/   LocalStack's FILESYSTEM_ROOT, pre-filled so that nothing is downloaded at start:
#           var/lib/localstack/lib/dynamodb-local/2/  DynamoDB Local from the npm package
#             $DDB_PACKAGE (integrity checked), plus a no-op stand-in for LocalStack's
#             ddb-local-loader javaagent built from noop-agent/ with the machine's JDK;
#           var/lib/localstack/lib/java/21 -> the machine's JDK home.
#
# Idempotent: a stamp records what was installed; a second run with the same pins and
# interpreter does nothing. Prints the Python it found. Exit status 1 with a message
# naming what is missing (Python 3.13, a JDK, npm) and how to get it.
#
#   FANOUT_PYTHON=/path/to/python3.13 bash localstack/host_install.sh   # choose the interpreter
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/localstack"
DEST="${FANOUT_LOCALSTACK_HOME:-$ROOT/.fanout/localstack-host}"

LOCALSTACK_VERSION=2026.3.0
LOCALSTACK_RELEASED=2026-03-24T00:00:00Z
UV_VERSION=0.9.5
DDB_PACKAGE=amplify-dynamodb-simulator@2.9.30   # ships DynamoDB Local 1.25.1 in package/emulator/
DDB_INTEGRITY=sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==

say() { echo "host_install.sh: $*"; }
die() { echo "host_install.sh: $*" >&2; exit 1; }

# --- Python >= 3.13 ------------------------------------------------------------------
is_py313() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; }

find_python() {
    local candidates=()
    [ -n "${FANOUT_PYTHON:-}" ] && candidates+=("$FANOUT_PYTHON")
    local pyroot="${PYENV_ROOT:-}"
    if [ -z "$pyroot" ] && command -v pyenv >/dev/null 2>&1; then pyroot="$(pyenv root)"; fi
    [ -z "$pyroot" ] && pyroot="$HOME/.pyenv"
    local p
    for p in $(ls -d "$pyroot"/versions/3.1[3-9]*/bin/python3 2>/dev/null | sort -rV); do candidates+=("$p"); done
    for p in python3.13 python3.14 python3; do
        command -v "$p" >/dev/null 2>&1 && candidates+=("$(command -v "$p")")
    done
    for p in "${candidates[@]}"; do
        if is_py313 "$p"; then echo "$p"; return 0; fi
    done
    return 1
}

PY="$(find_python)" || die "LocalStack's host mode needs Python 3.13 or newer, and none was found
  (looked at \$FANOUT_PYTHON, pyenv's versions/3.13+ and python3.13/python3 on PATH).
  Install one, e.g. 'pyenv install 3.13', or 'apt-get install python3.13' where your
  distribution has it, then run again (or set FANOUT_PYTHON=/path/to/python3.13).
  With a Docker engine running, start.sh uses the LocalStack image instead."

# --- JDK (javac, jar) and npm ---------------------------------------------------------
command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1 \
    || die "a JDK (javac, jar) is needed for DynamoDB Local: apt-get install openjdk-17-jdk-headless"
command -v npm >/dev/null 2>&1 || die "npm is needed to fetch DynamoDB Local: apt-get install npm"
JAVA_HOME_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
[ -x "$JAVA_HOME_DIR/bin/java" ] || die "no java next to javac in $JAVA_HOME_DIR"

want="$( { echo "$LOCALSTACK_VERSION $LOCALSTACK_RELEASED $UV_VERSION $DDB_PACKAGE $DDB_INTEGRITY"
           "$PY" -c 'import sys; print(sys.executable, sys.version)'; echo "$JAVA_HOME_DIR"
           cat "$HERE/noop-agent/"*; } | sha256sum | cut -d' ' -f1)"
STAMP="$DEST/.installed"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$DEST/venv/bin/python" ]; then
    exit 0
fi

say "installing LocalStack $LOCALSTACK_VERSION for host mode into ${DEST#"$ROOT"/} (Python: $PY)"
rm -rf "$DEST"
mkdir -p "$DEST"

# uv in a small venv of its own, then LocalStack's venv made and filled by uv.
"$PY" -m venv "$DEST/uv" || die "'$PY -m venv' failed (on Debian: apt-get install python3-venv)"
"$DEST/uv/bin/python" -m pip install --disable-pip-version-check --quiet "uv==$UV_VERSION"
"$DEST/uv/bin/uv" venv --quiet --python "$PY" "$DEST/venv"
VIRTUAL_ENV="$DEST/venv" "$DEST/uv/bin/uv" pip install --quiet --python "$DEST/venv/bin/python" \
    --exclude-newer "$LOCALSTACK_RELEASED" "localstack-core[runtime]==$LOCALSTACK_VERSION"

# DynamoDB Local from the npm package, checked against its pinned integrity.
DDB_DIR="$DEST/root/var/lib/localstack/lib/dynamodb-local/2"
mkdir -p "$DDB_DIR" "$DEST/tmp"
(cd "$DEST/tmp" && npm pack --silent "$DDB_PACKAGE" >/dev/null)
tgz="$(ls "$DEST"/tmp/*.tgz)"
got="sha512-$("$PY" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tgz")"
[ "$got" = "$DDB_INTEGRITY" ] || die "$DDB_PACKAGE: integrity $got, expected $DDB_INTEGRITY"
tar -xzf "$tgz" -C "$DEST/tmp" package/emulator
cp -r "$DEST/tmp/package/emulator/DynamoDBLocal.jar" "$DEST/tmp/package/emulator/DynamoDBLocal_lib" "$DDB_DIR/"

# The no-op javaagent LocalStack passes to DynamoDB Local.
mkdir -p "$DEST/tmp/agent"
javac -d "$DEST/tmp/agent" "$HERE/noop-agent/NoopAgent.java"
jar cfm "$DDB_DIR/ddb-local-loader-0.1.jar" "$HERE/noop-agent/MANIFEST.MF" -C "$DEST/tmp/agent" .

# The JDK LocalStack would otherwise download.
mkdir -p "$DEST/root/var/lib/localstack/lib/java"
ln -sfn "$JAVA_HOME_DIR" "$DEST/root/var/lib/localstack/lib/java/21"

rm -rf "$DEST/tmp"
echo "$want" > "$STAMP"
say "installed ($(du -sh "$DEST" | cut -f1))"
