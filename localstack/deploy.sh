#!/usr/bin/env bash
# Deploy the data resources of infra/template.yaml (table, queues, bucket) into the
# running local emulator as CloudFormation stack ${FANOUT_STACK_NAME:-fanout-local},
# verify them, and write .fanout/local.env. Safe to re-run. Extra arguments go to
# localstack/deploy_stack.py (see --help).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ ! -x "$ROOT/.venv/bin/python" ]; then
    bash "$ROOT/localstack/venv.sh"
fi
exec "$ROOT/.venv/bin/python" "$ROOT/localstack/deploy_stack.py" "$@"
