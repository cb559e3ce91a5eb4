#!/usr/bin/env bash
# Start LocalStack on 127.0.0.1:${FANOUT_EMULATOR_PORT:-4566}.
#
#   * a Docker engine answers (`docker info`) -> the LocalStack image (docker-compose.yml)
#   * otherwise -> host mode: LocalStack's own runtime from a venv on Python >= 3.13
#     (installed by host_install.sh on first use), DynamoDB Local as its Java child.
#
# Idempotent: a LocalStack this script started that still answers is left alone, and a
# second start reuses what host_install.sh installed. Prints which emulator runs and how
# long setup (install) and start took. State lives in .fanout/ (gitignored):
# emulator.kind, emulator.pid, localstack.log. Stop it with localstack/stop.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${FANOUT_EMULATOR_PORT:-4566}"
STATE="$ROOT/.fanout"
KIND_FILE="$STATE/emulator.kind"
PID_FILE="$STATE/emulator.pid"
LOG_FILE="$STATE/localstack.log"
COMPOSE_FILE="$ROOT/localstack/docker-compose.yml"
HOST_HOME="${FANOUT_LOCALSTACK_HOME:-$STATE/localstack-host}"
WAIT_SECONDS=120
# The services the stack uses. kms: a table with SSESpecification makes LocalStack's
# DynamoDB create a key, and without kms the stack's create fails.
SERVICES=dynamodb,sqs,s3,cloudformation,kms,sts,iam
mkdir -p "$STATE"

now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# ready: exit 0 once /_localstack/health reports our services as available or running
# and DynamoDB answers a ListTables (DynamoDB Local, a Java process, starts last).
ready() {
    python3 - "$PORT" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
base = f"http://127.0.0.1:{port}"
try:
    with urllib.request.urlopen(f"{base}/_localstack/health", timeout=2) as r:
        services = json.load(r).get("services", {})
    if not all(services.get(s) in ("available", "running") for s in ("dynamodb", "sqs", "s3", "cloudformation")):
        sys.exit(1)
    req = urllib.request.Request(
        base + "/",
        data=b"{}",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
            # LocalStack reads the account and region from the credential scope.
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# answers: exit 0 when anything gives an HTTP answer on the port within 2 s.
answers() {
    python3 - "$PORT" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2).read()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}

pid_alive() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

# --- already running? -----------------------------------------------------------------
kind="$(cat "$KIND_FILE" 2>/dev/null || true)"
if [ -n "$kind" ] && ready; then
    echo "start.sh: LocalStack ($kind) already running on http://127.0.0.1:$PORT"
    exit 0
fi
if [ -n "$kind" ]; then
    echo "start.sh: clearing state of a LocalStack ($kind) that no longer answers"
    bash "$ROOT/localstack/stop.sh" >/dev/null 2>&1 || true
fi
if answers; then
    echo "start.sh: something that is not ours already listens on 127.0.0.1:$PORT;" \
         "stop it or set FANOUT_EMULATOR_PORT" >&2
    exit 1
fi

wait_ready() {  # wait_ready STARTED_AT: poll until ready, the process dies or time runs out
    local tries=$((WAIT_SECONDS * 5))
    for _ in $(seq "$tries"); do
        if ready; then return 0; fi
        if [ "$kind" = host ] && ! pid_alive; then return 1; fi
        sleep 0.2
    done
    return 1
}

# --- Docker engine: the LocalStack image ------------------------------------------------
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f "$COMPOSE_FILE" "$@"
    else
        docker-compose -f "$COMPOSE_FILE" "$@"
    fi
}
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }; then
    kind=docker
    t0="$(now)"
    echo "start.sh: Docker engine found; starting the LocalStack image"
    FANOUT_EMULATOR_PORT="$PORT" LOCALSTACK_SERVICES="$SERVICES" compose up -d
    echo docker > "$KIND_FILE"
    if wait_ready; then
        echo "start.sh: LocalStack (docker) serving $SERVICES on http://127.0.0.1:$PORT; start $(since "$t0") s"
        exit 0
    fi
    echo "start.sh: LocalStack did not become ready within ${WAIT_SECONDS}s" >&2
    compose logs --tail 50 >&2 || true
    exit 1
fi

# --- host mode ----------------------------------------------------------------------------
kind=host
t0="$(now)"
warm=warm
[ -f "$HOST_HOME/.installed" ] || warm=cold
FANOUT_LOCALSTACK_HOME="$HOST_HOME" bash "$ROOT/localstack/host_install.sh"
setup="$(since "$t0")"

t1="$(now)"
: > "$LOG_FILE"
mkdir -p "$HOST_HOME/home"
# A clean environment: LocalStack reads many variables (AWS_*, DEBUG, …) and the caller's
# must not leak in. setsid + nohup: it outlives this shell and a Ctrl-C aimed at make;
# stop.sh ends its process group (the Python runtime and its DynamoDB Local child).
setsid nohup env -i \
    PATH="$HOST_HOME/venv/bin:/usr/local/bin:/usr/bin:/bin" \
    HOME="$HOST_HOME/home" LANG=C.UTF-8 \
    OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$HOST_HOME/root" \
    GATEWAY_LISTEN="127.0.0.1:$PORT" LOCALSTACK_HOST="127.0.0.1:$PORT" \
    SQS_ENDPOINT_STRATEGY=path SERVICES="$SERVICES" EAGER_SERVICE_LOADING=1 \
    DYNAMODB_IN_MEMORY=1 DYNAMODB_HEAP_SIZE="${FANOUT_DYNAMODB_HEAP:-1g}" DNS_ADDRESS=0 DISABLE_EVENTS=1 \
    SKIP_SSL_CERT_DOWNLOAD=1 AWS_DEFAULT_REGION=us-east-1 \
    "$HOST_HOME/venv/bin/python" -m localstack.runtime.main \
    >>"$LOG_FILE" 2>&1 < /dev/null &
echo $! > "$PID_FILE"
echo host > "$KIND_FILE"

if wait_ready; then
    version="$("$HOST_HOME/venv/bin/python" -c 'from importlib.metadata import version; print(version("localstack-core"))')"
    echo "start.sh: LocalStack $version (host mode, pid $(cat "$PID_FILE")) serving $SERVICES" \
         "on http://127.0.0.1:$PORT; setup $setup s ($warm), start $(since "$t1") s; log .fanout/localstack.log"
    exit 0
fi
echo "start.sh: LocalStack (host mode) did not become ready within ${WAIT_SECONDS}s; log:" >&2
tail -n 40 "$LOG_FILE" >&2 || true
bash "$ROOT/localstack/stop.sh" >&2 || true
exit 1
