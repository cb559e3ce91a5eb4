#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API with schemathesis (RELIABILITY.md, "Fuzzing").
#
# Starts the local gateway on a free port over the running local stack, reads its OpenAPI
# document (GET /1/docs/spec as YAML) and lets schemathesis send every documented
# operation generated requests, valid and invalid, checking each answer:
#   not_a_server_error            no 5xx
#   status_code_conformance       the status is documented for the operation
#   content_type_conformance      the Content-Type is one the document lists for it
#   response_schema_conformance   the body matches the documented schema
# Exits non-zero on any failure and prints a short summary. `make fuzz` runs it on its
# own, `make test` after cargo test.
#
# Needs the emulator running with the stack deployed (`make emulator-up deploy-local`);
# the variables of .fanout/local.env are read from the environment or from that file.
#
# Settings (environment):
#   FUZZ_EXAMPLES  test cases per operation in the fuzzing phase (default 50); the
#                  coverage phase adds its own boundary and invalid-value cases
#   FUZZ_SEED      hypothesis seed (default fixed, so a run is repeatable; any integer)
#   FUZZ_WORKERS   concurrent schemathesis workers (default 2)
#   FUZZ_PHASES    schemathesis phases (default examples,coverage,fuzzing)
#   FUZZ_MODE      positive (valid requests only), negative or all (default)
#   FUZZ_TIMEOUT   hard limit of the schemathesis run in seconds (default 600)
#   FUZZ_GATEWAY   a gateway binary to run instead of building target/debug/gateway
#   FUZZ_CARGO_ARGS  extra arguments of that build (make test: the features its tests
#                  were built with, so the gateway is not compiled again)
#   FANOUT_ADMIN_TOKEN  bearer token sent with every request (an admin's: the run acts
#                  on random accounts); when unset or refused, the token of a new admin
#                  account made by `target/debug/fanout-admin bootstrap` when that binary
#                  exists, else no Authorization header.
#
# Never fuzzed: DELETE and PATCH on /1/accounts... and /1/tokens... (when the document
# has them): they could revoke or delete the token the run uses, or its account, and
# turn the rest of the run into 401s.
#
# Python: a venv .venv-fuzz on python3.11 (PYTHON to override) with
# tests/fuzz/requirements.txt, reinstalled only when that file changes. Reports (JUnit,
# NDJSON) and the gateway's log go to .fanout/fuzz/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-50}"
FUZZ_SEED="${FUZZ_SEED:-20261130}"
FUZZ_WORKERS="${FUZZ_WORKERS:-2}"
FUZZ_PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing}"
FUZZ_MODE="${FUZZ_MODE:-all}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-600}"
PYTHON="${PYTHON:-python3.11}"
VENV="$ROOT/.venv-fuzz"
REQ="$ROOT/tests/fuzz/requirements.txt"
STAMP="$VENV/.fanout-requirements.sha256"
OUT="$ROOT/.fanout/fuzz"
LOCAL_ENV="$ROOT/.fanout/local.env"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

log() { echo "fuzz: $*"; }
fail() { echo "fuzz: $*" >&2; exit 1; }
started=$(date +%s)

# --- the venv -------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || fail "'$PYTHON' not found (schemathesis runs on Python 3.11 here; PYTHON=... picks another)"
want="$( { cat "$REQ"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "$VENV is broken; recreating it"
    rm -rf "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; fail "'$PYTHON -m venv' failed"; }
    fi
    log "installing tests/fuzz/requirements.txt"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQ"
    echo "$want" > "$STAMP"
fi
log "$("$VENV/bin/schemathesis" --version 2>&1 | head -1)"

# --- the stack's variables ------------------------------------------------------------
if [ -z "${FANOUT_TABLE:-}" ]; then
    [ -f "$LOCAL_ENV" ] || fail "no $LOCAL_ENV: start the local stack first (make emulator-up deploy-local)"
    given_token="${FANOUT_ADMIN_TOKEN:-}"
    set -a
    # shellcheck disable=SC1090
    . "$LOCAL_ENV"
    set +a
    # A token given in the environment wins over the file's.
    if [ -n "$given_token" ]; then
        FANOUT_ADMIN_TOKEN="$given_token"
    fi
fi

# --- build ------------------------------------------------------------------------------
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
ADMIN="$TARGET/debug/fanout-admin"
if [ -n "${FUZZ_GATEWAY:-}" ]; then
    GATEWAY="$FUZZ_GATEWAY"
else
    # shellcheck disable=SC2206
    bins=(${FUZZ_CARGO_ARGS:-} --bin gateway)
    # The admin tool arrives with authentication; build it too once the package has it.
    if grep -q '^name = "fanout-admin"' functions/Cargo.toml; then
        bins+=(--bin fanout-admin)
    fi
    cargo build --quiet -p fanout-functions "${bins[@]}"
    GATEWAY="$TARGET/debug/gateway"
fi

# --- the gateway --------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
GATEWAY_PID=""
stop_gateway() {
    if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
    fi
}
trap stop_gateway EXIT
FANOUT_ADDR="127.0.0.1:$PORT" FANOUT_TOKEN_REQUESTS_PER_MINUTE=1000000 \
    "$GATEWAY" > "$OUT/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 100); do
    if curl -sf -o /dev/null "$BASE/version"; then
        break
    fi
    kill -0 "$GATEWAY_PID" 2>/dev/null || { tail -20 "$OUT/gateway.log" >&2; fail "the gateway exited"; }
    sleep 0.2
done
curl -sf -o /dev/null "$BASE/version" || fail "the gateway did not answer GET /version on $BASE"
log "gateway on $BASE (log: $OUT/gateway.log)"
health="$(curl -s -o /dev/null -w '%{http_code}' "$BASE/1/healthcheck")"
[ "$health" = 200 ] || fail "GET /1/healthcheck answered $health: is the emulator up and the stack deployed (make emulator-up deploy-local)?"

# --- the token ------------------------------------------------------------------------------
# What a non-public route answers with `token` (empty: no Authorization header).
probe() {
    local header=()
    [ -n "$1" ] && header=(-H "Authorization: Bearer $1")
    curl -s -o /dev/null -w '%{http_code}' "${header[@]}" \
        "$BASE/1/faces/count?account_id=00000000-0000-4000-8000-000000000000"
}
TOKEN="${FANOUT_ADMIN_TOKEN:-}"
if [ -n "$TOKEN" ]; then
    if [ "$(probe "$TOKEN")" = 401 ]; then
        log "FANOUT_ADMIN_TOKEN is refused (401): not a token of this stack's table"
        TOKEN=""
    else
        log "bearer token from FANOUT_ADMIN_TOKEN"
    fi
fi
if [ -z "$TOKEN" ] && [ -x "$ADMIN" ]; then
    made="$("$ADMIN" bootstrap --description fuzz)" || fail "fanout-admin bootstrap failed"
    TOKEN="$(printf '%s' "$made" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["token"])')" \
        || fail "fanout-admin bootstrap printed no token: $made"
    log "bearer token of a new admin account (fanout-admin bootstrap --description fuzz)"
elif [ -z "$TOKEN" ]; then
    log "no token (no FANOUT_ADMIN_TOKEN, no $ADMIN): requests go without Authorization"
fi
# A run whose every request is refused for want of a token would test nothing.
case "$(probe "$TOKEN")" in
    401|403) fail "a non-public route refused the run's token (or its absence): set FANOUT_ADMIN_TOKEN to an admin token of this stack" ;;
esac
auth=()
if [ -n "$TOKEN" ]; then
    auth=(-H "Authorization: Bearer $TOKEN")
fi

# --- the document ---------------------------------------------------------------------------
SPEC="$OUT/openapi.yaml"
curl -sf -H 'Accept: application/x-yaml' "${auth[@]}" "$BASE/1/docs/spec" -o "$SPEC" \
    || fail "GET /1/docs/spec failed"
exclude=()
if grep -qE '^  /1/(accounts|tokens)' "$SPEC"; then
    exclude=(--exclude-name-regex '^(DELETE|PATCH) /1/(accounts|tokens)')
    log "not fuzzed: DELETE and PATCH on /1/accounts and /1/tokens (the run's own token and account)"
fi

# --- the run ---------------------------------------------------------------------------------
log "schemathesis: $FUZZ_EXAMPLES examples per operation, phases $FUZZ_PHASES, mode $FUZZ_MODE, seed $FUZZ_SEED, $FUZZ_WORKERS workers"
set +e
# From $OUT: schemathesis keeps a cache directory (.schemathesis) where it runs.
(cd "$OUT" && timeout "$FUZZ_TIMEOUT" "$VENV/bin/schemathesis" run "$SPEC" \
    --url "$BASE" \
    --checks "$CHECKS" \
    --phases "$FUZZ_PHASES" \
    --mode "$FUZZ_MODE" \
    --max-examples "$FUZZ_EXAMPLES" \
    --seed "$FUZZ_SEED" \
    --workers "$FUZZ_WORKERS" \
    --generation-database none \
    --request-timeout 30 \
    --no-color \
    --report junit,ndjson \
    --report-dir "$OUT" \
    "${auth[@]}" "${exclude[@]}")
status=$?
set -e
[ "$status" = 124 ] && log "schemathesis did not finish within FUZZ_TIMEOUT=$FUZZ_TIMEOUT s"
summary=0
"$VENV/bin/python" "$ROOT/tests/fuzz/summary.py" "$OUT" "$(( $(date +%s) - started ))" || summary=$?
if [ "$status" != 0 ] || [ "$summary" != 0 ]; then
    grep -a ' ERROR ' "$OUT/gateway.log" | tail -5 >&2 || true
    fail "FAILED (schemathesis exit $status); reports in $OUT"
fi
log "passed"
