#!/usr/bin/env bash
# Stop the emulator that localstack/start.sh started (and only that one).
# Idempotent: with nothing running it just says so.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE="$ROOT/.fanout"
KIND_FILE="$STATE/emulator.kind"
PID_FILE="$STATE/emulator.pid"
COMPOSE_FILE="$ROOT/localstack/docker-compose.yml"

kind="$(cat "$KIND_FILE" 2>/dev/null || true)"

case "$kind" in
localstack)
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        if docker compose version >/dev/null 2>&1; then
            docker compose -f "$COMPOSE_FILE" down
        else
            docker-compose -f "$COMPOSE_FILE" down
        fi
        echo "stop.sh: LocalStack stopped"
    else
        echo "stop.sh: LocalStack was started but the Docker engine no longer answers; nothing to stop"
    fi
    ;;
moto | "")
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    # Only a live process that really is our moto_server is signalled (pids get reused).
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q moto_serve; then
        kill -TERM "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stop.sh: moto_server stopped (pid $pid)"
    else
        echo "stop.sh: no emulator started by start.sh is running"
    fi
    ;;
*)
    echo "stop.sh: unknown emulator kind '$kind' in $KIND_FILE; clearing it" >&2
    ;;
esac
rm -f "$KIND_FILE" "$PID_FILE"
