#!/usr/bin/env bash
# End-to-end check of the ClearML surface with the real clients (clearml 2.1.12 SDK,
# clearml-agent 3.0.3; tests/clearml/scenarios.py): starts the gateway on a free port
# over the running local stack, makes a fresh account with a token (fanout-admin
# bootstrap; its ClearML credentials are the token split in two), writes a clearml.conf
# for it, and runs the scenarios (the watchdog's runs the reconciler once, with the
# worker binary). `make clearml` runs it with the emulator; scenario names
# as arguments run only those.
#
# Needs the emulator running with the stack deployed (`make emulator-up deploy-local`);
# the variables of .fanout/local.env are read from the environment or from that file.
# Python: tests/clearml/venv.sh (.venv-clearml, Python 3.11). The work directory (scripts,
# agents' home and logs, the gateway's log) is a temporary one, kept when a scenario
# fails (its path is printed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
LOCAL_ENV="$ROOT/.fanout/local.env"
log() { echo "clearml: $*"; }
fail() { echo "clearml: $*" >&2; exit 1; }
started=$(date +%s)

PY="$(bash tests/clearml/venv.sh)"

if [ -z "${FANOUT_TABLE:-}" ]; then
    [ -f "$LOCAL_ENV" ] || fail "no $LOCAL_ENV: start the local stack first (make emulator-up deploy-local)"
    set -a
    # shellcheck disable=SC1090
    . "$LOCAL_ENV"
    set +a
fi

# shellcheck disable=SC2206
cargo build --quiet -p fanout-functions ${CLEARML_CARGO_ARGS:-} --bin gateway --bin fanout-admin
# shellcheck disable=SC2206
cargo build --quiet -p fanout-workers ${CLEARML_CARGO_ARGS:-} --bin worker
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fanout-clearml.XXXXXX")"
mkdir -p "$WORK/home"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
GATEWAY_PID=""
finish() {
    local status=$?
    if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
    fi
    if [ "$status" = 0 ]; then
        rm -rf "$WORK"
    else
        log "kept $WORK (agents' and gateway's logs)"
    fi
    log "$(( $(date +%s) - started )) s"
}
trap finish EXIT
FANOUT_ADDR="127.0.0.1:$PORT" FANOUT_TOKEN_REQUESTS_PER_MINUTE=1000000 \
    "$TARGET/debug/gateway" > "$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$BASE/version" && break
    kill -0 "$GATEWAY_PID" 2>/dev/null || { tail -20 "$WORK/gateway.log" >&2; fail "the gateway exited"; }
    sleep 0.2
done
curl -sf -o /dev/null "$BASE/version" || fail "the gateway did not answer on $BASE"
log "gateway on $BASE"

# A fresh account per run: its own default queue, no tasks left by another run.
made="$("$TARGET/debug/fanout-admin" bootstrap --description clearml-e2e)" || fail "fanout-admin bootstrap failed"
read -r ACCESS_KEY SECRET_KEY < <(printf '%s' "$made" | "$PY" -c '
import json, sys
token = json.load(sys.stdin)["token"]
_, rest = token.split("_", 1)
token_id, secret = rest.split("_", 1)
print(token_id, secret)')
cat > "$WORK/clearml.conf" <<CONF
api {
  api_server: "$BASE/clearml"
  web_server: "http://localhost:8080"
  files_server: "http://localhost:8081"
  credentials { access_key: "$ACCESS_KEY", secret_key: "$SECRET_KEY" }
  http { default_method: "post" }
}
CONF

log "$("$PY" -c 'import clearml, clearml_agent.version as v; print("clearml", clearml.__version__, "/ clearml-agent", v.__version__)')"
set +e
CLEARML_CONFIG_FILE="$WORK/clearml.conf" CLEARML_E2E_DIR="$WORK" HOME="$WORK/home" \
    FANOUT_WORKER_BIN="$TARGET/debug/worker" \
    timeout "${CLEARML_TIMEOUT:-600}" "$PY" -u tests/clearml/scenarios.py "$@"
status=$?
set -e
exit "$status"
