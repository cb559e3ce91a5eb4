#!/usr/bin/env bash
# Build what a deploy ships, without Docker or AWS credentials:
#   * the functions of infra/template.yaml: the one multi-call binary they all run
#     (`lambda`, what each serves picked by its FANOUT_FUNCTION), built once by
#     cargo-lambda for ARCH, laid out as `sam build` lays it out
#     (.aws-sam/build/<LogicalId>/bootstrap) and zipped once (target/package/lambda.zip;
#     target/package/<LogicalId>.zip, what Lambda takes, are hard links to it);
#   * the worker image's binary (target/package/worker);
#   * `sam validate --lint` of the template.
# ARCH: arm64 or x86_64, the template's Architecture parameter (default: this machine's;
# an aarch64 build on an x86-64 machine needs the aarch64 Rust standard library).
# Tools come from .venv-package/ (infra/requirements-package.txt), made on first use.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-package"
REQ="$ROOT/infra/requirements-package.txt"

case "${ARCH:-$(uname -m)}" in
    arm64 | aarch64) arch=arm64 ;;
    x86_64 | amd64) arch=x86_64 ;;
    *) echo "package.sh: ARCH must be arm64 or x86_64, not '${ARCH:-$(uname -m)}'" >&2; exit 1 ;;
esac

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -f "$VENV/.stamp" ] || [ "$(cat "$VENV/.stamp")" != "$want" ]; then
    echo "package.sh: installing $(grep -v '^#' "$REQ" | tr '\n' ' ')into .venv-package"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ"
    echo "$want" > "$VENV/.stamp"
fi
export PATH="$VENV/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

exec "$VENV/bin/python" "$ROOT/infra/package.py" "$arch"
