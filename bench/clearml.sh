#!/usr/bin/env bash
# ClearML polling benchmark: AGENTS simulated idle clearml-agents (functions/examples/
# clearml_agents.rs) poll the local gateway's ClearML surface back-to-back for SECONDS,
# once per MODE (next: queues.get_next_task on one empty queue; get_all: tasks.get_all
# on each agent's own task, as an agent running a task does; mixed: half and half).
# Prints per mode the generator's JSON line (requests, errors, requests/s, p50/p90/p99/
# max), the DynamoDB (and any other AWS) requests per poll, and the CPU seconds the
# gateway, the generator and the emulator spent (and the whole machine: what else ran).
#
# Each mode runs on its own freshly started gateway (FANOUT_COUNT_REQUESTS=1, which
# prints its AWS request counts when it stops), twice: once with SECONDS 0 (the agents
# only log in and make their queue or tasks) and once for real; the first run's counts
# are subtracted from the second's, so "per poll" counts the polls alone. The token's
# rate limit is raised out of the way (FANOUT_TOKEN_REQUESTS_PER_MINUTE=100000000); its
# per-request counter write still happens, as on AWS. One fresh account
# (fanout-admin bootstrap) for the whole run.
#
# Usage: bench/clearml.sh [AGENTS] [SECONDS] [MODE...]   (default: 50 20 next get_all mixed)
#        PROFILE=dev bench/clearml.sh ...               (debug build; default release)
# Needs the emulator running with the stack deployed (bash localstack/start.sh &&
# bash localstack/deploy.sh, or make emulator-up deploy-local: .fanout/local.env), and
# python3. Results in BENCHMARKS.md ("ClearML polling: 50 idle agents").
set -euo pipefail
cd "$(dirname "$0")/.."
agents=${1:-50} seconds=${2:-20}
modes=("${@:3}")
[ ${#modes[@]} -gt 0 ] || modes=(next get_all mixed)
profile=${PROFILE:-release}
cargo build --profile "$profile" -p fanout-functions --bin gateway --bin fanout-admin \
    --example clearml_agents
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
[ -f .fanout/local.env ] || { echo "no .fanout/local.env: deploy the local stack first" >&2; exit 1; }
set -a; . .fanout/local.env; set +a

# cpu_seconds, machine_cpu, $emulator and $dynamodb (the emulator's processes).
# shellcheck source=bench/cpu.sh
. bench/cpu.sh
emulator_cpu() {
    if [ -n "$emulator" ] && [ -e "/proc/$emulator" ]; then
        echo "$(cpu_seconds "$emulator") $([ -n "$dynamodb" ] && cpu_seconds "$dynamodb" || echo 0) $(machine_cpu)"
    else
        echo "0 0 $(machine_cpu)"
    fi
}

out=$(mktemp -d "${TMPDIR:-/tmp}/fanout-bench-clearml.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
gateway=""
finish() {
    # Only the gateway this script started.
    if [ -n "$gateway" ] && kill -0 "$gateway" 2>/dev/null; then
        kill -TERM "$gateway" 2>/dev/null || true
        wait "$gateway" 2>/dev/null || true
    fi
}
trap finish EXIT

# start_gateway LOG: a fresh gateway on $port, its counts starting from zero.
start_gateway() {
    FANOUT_ADDR="127.0.0.1:$port" FANOUT_COUNT_REQUESTS=1 \
        FANOUT_TOKEN_REQUESTS_PER_MINUTE=100000000 RUST_LOG=warn \
        "$dir/gateway" >"$1" 2>&1 &
    gateway=$!
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "$base/version" && return 0
        kill -0 "$gateway" 2>/dev/null || { tail -20 "$1" >&2; echo "the gateway exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "the gateway did not answer on $base" >&2
    exit 1
}
# stop_gateway LOG COUNTS: SIGTERM, then its request counts (its last JSON line) to COUNTS.
stop_gateway() {
    kill -TERM "$gateway"
    wait "$gateway" || true
    gateway=""
    grep '^{' "$1" | tail -1 >"$2"
    [ -s "$2" ] || { echo "the gateway printed no request counts ($1)" >&2; exit 1; }
}

made=$("$dir/fanout-admin" bootstrap --description "bench clearml $(date -u +%FT%TZ)")
read -r access_key secret_key < <(printf '%s' "$made" | python3 -c '
import json, sys
_, rest = json.load(sys.stdin)["token"].split("_", 1)
print(*rest.split("_", 1))')

# The account's first ClearML calls make its default queue and the JWT signing key; do
# that once here, so no mode's counts include it.
start_gateway "$out/warm-up.log"
"$dir/examples/clearml_agents" "$base" "$access_key" "$secret_key" 2 0 mixed >/dev/null
stop_gateway "$out/warm-up.log" "$out/warm-up-counts.json"

time_cmd=()
[ -x /usr/bin/time ] && time_cmd=(/usr/bin/time -f "%U %S")

for mode in "${modes[@]}"; do
    # Setup alone: logins and the queue or tasks, no polls.
    start_gateway "$out/$mode-setup.log"
    "$dir/examples/clearml_agents" "$base" "$access_key" "$secret_key" "$agents" 0 "$mode" \
        >"$out/$mode-setup.json"
    stop_gateway "$out/$mode-setup.log" "$out/$mode-setup-counts.json"

    start_gateway "$out/$mode.log"
    before=$(emulator_cpu)
    if [ ${#time_cmd[@]} -gt 0 ]; then
        "${time_cmd[@]}" -o "$out/$mode-time.txt" "$dir/examples/clearml_agents" "$base" \
            "$access_key" "$secret_key" "$agents" "$seconds" "$mode" >"$out/$mode.json"
    else
        "$dir/examples/clearml_agents" "$base" "$access_key" "$secret_key" "$agents" \
            "$seconds" "$mode" >"$out/$mode.json"
    fi
    after=$(emulator_cpu)
    gateway_cpu=$(cpu_seconds "$gateway")
    stop_gateway "$out/$mode.log" "$out/$mode-counts.json"
    generator_cpu=$([ -s "$out/$mode-time.txt" ] && awk '{ printf "%.1f", $1 + $2 }' "$out/$mode-time.txt" || echo "?")

    cat "$out/$mode.json"
    python3 - "$out" "$mode" "$before" "$after" "$gateway_cpu" "$generator_cpu" <<'PY'
import json, os, sys
out, mode, before, after, gateway_cpu, generator_cpu = sys.argv[1:]
run = json.load(open(f"{out}/{mode}.json"))
setup = json.load(open(f"{out}/{mode}-setup-counts.json"))
total = json.load(open(f"{out}/{mode}-counts.json"))
polls = run["requests"]
print(f"== {mode}: {run['agents']} agents, {run['seconds']} s: {polls} polls, "
      f"{run['requests_per_second']} requests/s, p50 {run['p50_ms']} ms, "
      f"p99 {run['p99_ms']} ms, max {run['max_ms']} ms, errors {run['errors']}"
      + (f" {run['errors_by_status']}" if run["errors"] else ""))
for endpoint, s in run["by_endpoint"].items():
    print(f"   {endpoint}: {s['requests']} requests, {s['requests_per_second']}/s, "
          f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, errors {s['errors']}")
print(f"   AWS requests per poll (setup's {run['setup_requests']} requests subtracted):")
for op in sorted(total):
    requests = total[op]["requests"] - setup.get(op, {}).get("requests", 0)
    items = total[op]["items"] - setup.get(op, {}).get("items", 0)
    if requests:
        print(f"     {op:32} {requests:8} requests  {requests / max(polls, 1):6.3f}/poll"
              f"  ({items} items, {items / max(polls, 1):.3f}/poll)")
b = [float(x) for x in before.split()]
a = [float(x) for x in after.split()]
ours = float(gateway_cpu) + (float(generator_cpu) if generator_cpu != "?" else 0) + a[0] - b[0] + a[1] - b[1]
print(f"   CPU seconds during the run: gateway {gateway_cpu}, generator {generator_cpu}, "
      f"LocalStack {a[0] - b[0]:.1f}, DynamoDB Local {a[1] - b[1]:.1f}; whole machine "
      f"{a[2] - b[2]:.1f} of {os.cpu_count() * run['elapsed_seconds']:.0f} on {os.cpu_count()} cores "
      f"(other processes ~{max(a[2] - b[2] - ours, 0):.1f})")
PY
done
echo "logs and counts: $out"
