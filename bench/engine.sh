#!/usr/bin/env bash
# Engine benchmark: one linker task of FACES/PER_SUBTASK subtasks on the local stack with
# WORKERS worker processes; prints the driver's timing line, then per worker its peak RSS,
# CPU seconds and AWS request counts (FANOUT_COUNT_REQUESTS=1), and the CPU seconds the
# emulator spent meanwhile. Needs the emulator running and deployed
# (make emulator-up deploy-local).   Usage: bench/engine.sh [WORKERS] [FACES] [PER_SUBTASK]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1} faces=${2:-10000} per=${3:-10}
profile=${PROFILE:-release}
if [ -n "${BIN_DIR:-}" ]; then
    # Binaries built elsewhere (e.g. another commit's worker, for a side-by-side run):
    # BIN_DIR holds `worker` and `engine_bench`.
    dir=$BIN_DIR
    bench=$BIN_DIR/engine_bench
else
    cargo build --profile "$profile" -p fanout-workers --bin worker --example engine_bench
    dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
    bench=$dir/examples/engine_bench
fi
set -a; . .fanout/local.env; set +a

# cpu_seconds, machine_cpu, $emulator and $dynamodb (the emulator's processes).
# shellcheck source=bench/cpu.sh
. bench/cpu.sh
emulator_cpu() {
    echo "localstack $(cpu_seconds "$emulator") dynamodb-local $([ -n "$dynamodb" ] && cpu_seconds "$dynamodb" || echo 0)"
}
out=$(mktemp -d)
pids=()
for i in $(seq 1 "$workers"); do
    FANOUT_COUNT_REQUESTS=1 RUST_LOG=warn "$dir"/worker >"$out/worker-$i.json" &
    pids+=($!)
done
before=$([ -n "$emulator" ] && emulator_cpu || echo "localstack 0 dynamodb-local 0")
"$bench" "$faces" "$per"
if [ -n "$emulator" ]; then
    after=$(emulator_cpu)
    echo "emulator CPU seconds during the run (bulk load included):" \
        "$(awk -v a="$after" -v b="$before" 'BEGIN { split(a, x, " "); split(b, y, " ");
            printf "LocalStack %.1f, DynamoDB Local %.1f", x[2] - y[2], x[4] - y[4] }')"
fi
for pid in "${pids[@]}"; do
    echo "worker $pid: $(grep VmHWM /proc/"$pid"/status), CPU seconds $(cpu_seconds "$pid")"
    kill -TERM "$pid"
done
wait
cat "$out"/worker-*.json
