#!/usr/bin/env bash
# Stop the LocalStack that localstack/start.sh started (and only that one): the compose
# project with a Docker engine, or in host mode the process group of the Python runtime,
# which includes its DynamoDB Local (Java) child. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE="$ROOT/.fanout"
KIND_FILE="$STATE/emulator.kind"
PID_FILE="$STATE/emulator.pid"
COMPOSE_FILE="$ROOT/localstack/docker-compose.yml"

kind="$(cat "$KIND_FILE" 2>/dev/null || true)"

# group_alive PGID: any process left in the group?
group_alive() { pgrep -g "$1" >/dev/null 2>&1; }
# descendants PID: every process below PID. DynamoDB Local runs in a session of its own
# (LocalStack starts it with setsid), so the group signal does not reach it.
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

case "$kind" in
docker)
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        if docker compose version >/dev/null 2>&1; then
            docker compose -f "$COMPOSE_FILE" down
        else
            docker-compose -f "$COMPOSE_FILE" down
        fi
        echo "stop.sh: LocalStack (docker) stopped"
    else
        echo "stop.sh: LocalStack was started in Docker but the engine no longer answers; nothing to stop"
    fi
    ;;
host | "")
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    # start.sh ran LocalStack under setsid, so its pid is its process group id. Only a
    # group whose leader is still our LocalStack, or that still has members, is signalled.
    if [ -n "$pid" ] && { tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q localstack.runtime.main \
        || group_alive "$pid"; }; then
        children="$(descendants "$pid")"
        # LocalStack stops its DynamoDB Local on SIGTERM; whatever is left after 15 s is killed.
        kill -TERM -- "-$pid" 2>/dev/null || true
        left() {
            group_alive "$pid" && return 0
            local c
            for c in $children; do kill -0 "$c" 2>/dev/null && return 0; done
            return 1
        }
        for _ in $(seq 75); do
            left || break
            sleep 0.2
        done
        if left; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
            echo "stop.sh: LocalStack did not stop within 15 s of SIGTERM; killed"
        fi
        echo "stop.sh: LocalStack (host mode) stopped (process group $pid)"
    else
        echo "stop.sh: no LocalStack started by start.sh is running"
    fi
    ;;
*)
    echo "stop.sh: unknown emulator kind '$kind' in $KIND_FILE; clearing it" >&2
    ;;
esac
rm -f "$KIND_FILE" "$PID_FILE"
