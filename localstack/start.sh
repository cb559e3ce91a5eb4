#!/usr/bin/env bash
# Start the local AWS emulator on 127.0.0.1:${FANOUT_EMULATOR_PORT:-4566}.
#
#   * Docker engine answers (`docker info`) -> LocalStack via localstack/docker-compose.yml
#   * otherwise                             -> moto_server from .venv (no Docker needed)
#
# Idempotent: an emulator this script started that still answers is left alone.
# State lives in .fanout/ (gitignored): emulator.kind, emulator.pid, moto.log.
# Stop it with localstack/stop.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${FANOUT_EMULATOR_PORT:-4566}"
STATE="$ROOT/.fanout"
KIND_FILE="$STATE/emulator.kind"
PID_FILE="$STATE/emulator.pid"
LOG_FILE="$STATE/moto.log"
COMPOSE_FILE="$ROOT/localstack/docker-compose.yml"
MOTO_WAIT_SECONDS=30
LOCALSTACK_WAIT_SECONDS=120
mkdir -p "$STATE"

# probe PATH: exit 0 when http://127.0.0.1:$PORT$PATH gives any HTTP answer within 2 s.
probe() {
    python3 - "$PORT" "$1" <<'PY'
import sys, urllib.request, urllib.error
port, path = sys.argv[1], sys.argv[2]
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).read()
except urllib.error.HTTPError:
    pass  # an HTTP error status still means the server answers
except Exception:
    sys.exit(1)
PY
}

# localstack_ready: exit 0 once LocalStack reports the services we use as available/running.
localstack_ready() {
    python3 - "$PORT" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=2) as r:
        services = json.load(r).get("services", {})
except Exception:
    sys.exit(1)
needed = ("dynamodb", "sqs", "s3", "cloudformation")
sys.exit(0 if all(services.get(s) in ("available", "running") for s in needed) else 1)
PY
}

pid_alive() {
    [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

# --- already running? -----------------------------------------------------------------
kind="$(cat "$KIND_FILE" 2>/dev/null || true)"
if [ "$kind" = moto ] && pid_alive && probe /moto-api/; then
    echo "start.sh: moto_server already running on http://127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"
    exit 0
fi
if [ "$kind" = localstack ] && localstack_ready; then
    echo "start.sh: LocalStack already running on http://127.0.0.1:$PORT"
    exit 0
fi
# Stale state from a crashed or killed emulator.
if [ -n "$kind" ]; then
    if [ "$kind" = moto ] && pid_alive; then
        kill "$(cat "$PID_FILE")" 2>/dev/null || true
    fi
    rm -f "$KIND_FILE" "$PID_FILE"
fi
if probe /; then
    echo "start.sh: something that is not ours already listens on 127.0.0.1:$PORT;" \
         "stop it or set FANOUT_EMULATOR_PORT" >&2
    exit 1
fi

# compose ARGS...: `docker compose` (v2 plugin) or `docker-compose` (v1), whichever exists.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f "$COMPOSE_FILE" "$@"
    else
        docker-compose -f "$COMPOSE_FILE" "$@"
    fi
}
have_compose() {
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1
}

# --- LocalStack when a Docker engine answers -----------------------------------------
docker_ok=false
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    if have_compose; then
        docker_ok=true
    else
        echo "start.sh: Docker engine found but no docker compose; falling back to moto_server"
    fi
fi
if $docker_ok; then
    echo "start.sh: Docker engine found; starting LocalStack"
    FANOUT_EMULATOR_PORT="$PORT" compose up -d
    echo localstack > "$KIND_FILE"
    for _ in $(seq "$LOCALSTACK_WAIT_SECONDS"); do
        if localstack_ready; then
            echo "start.sh: started LocalStack on http://127.0.0.1:$PORT"
            exit 0
        fi
        sleep 1
    done
    echo "start.sh: LocalStack did not become healthy within ${LOCALSTACK_WAIT_SECONDS}s" >&2
    compose logs --tail 50 >&2 || true
    exit 1
fi

# --- moto_server otherwise ------------------------------------------------------------
if [ ! -x "$ROOT/.venv/bin/moto_server" ]; then
    bash "$ROOT/localstack/venv.sh"
fi
echo "start.sh: no Docker engine; starting moto_server"
# setsid + nohup: the server outlives this shell and is not hit by a terminal's Ctrl-C
# aimed at make; stop.sh ends it by pid. moto_serve.py is moto_server with DynamoDB
# requests serialized, as DynamoDB applies writes to an item (see the file).
: > "$LOG_FILE"
setsid nohup "$ROOT/.venv/bin/python" "$ROOT/localstack/moto_serve.py" -H 127.0.0.1 -p "$PORT" \
    >>"$LOG_FILE" 2>&1 < /dev/null &
echo $! > "$PID_FILE"
echo moto > "$KIND_FILE"

tries=$((MOTO_WAIT_SECONDS * 5))
for _ in $(seq "$tries"); do
    if probe /moto-api/; then
        echo "start.sh: started moto_server on http://127.0.0.1:$PORT (pid $(cat "$PID_FILE"), log .fanout/moto.log)"
        exit 0
    fi
    if ! pid_alive; then
        break
    fi
    sleep 0.2
done
echo "start.sh: moto_server did not answer on port $PORT within ${MOTO_WAIT_SECONDS}s; log:" >&2
tail -n 30 "$LOG_FILE" >&2 || true
kill "$(cat "$PID_FILE")" 2>/dev/null || true
rm -f "$PID_FILE" "$KIND_FILE"
exit 1
