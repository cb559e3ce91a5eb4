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
cargo build --profile "$profile" -p fanout-workers --bin worker --example engine_bench
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
set -a; . .fanout/local.env; set +a

# cpu_seconds PID: user + system CPU time of a live process.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}
emulator=$(cat .fanout/emulator.pid 2>/dev/null || true)
out=$(mktemp -d)
pids=()
for i in $(seq 1 "$workers"); do
    FANOUT_COUNT_REQUESTS=1 RUST_LOG=warn "$dir"/worker >"$out/worker-$i.json" &
    pids+=($!)
done
emulator_before=$([ -n "$emulator" ] && cpu_seconds "$emulator" || echo 0)
"$dir"/examples/engine_bench "$faces" "$per"
if [ -n "$emulator" ]; then
    used=$(awk -v a="$(cpu_seconds "$emulator")" -v b="$emulator_before" 'BEGIN { printf "%.1f", a - b }')
    echo "emulator CPU seconds during the run (bulk load included): $used"
fi
for pid in "${pids[@]}"; do
    echo "worker $pid: $(grep VmHWM /proc/"$pid"/status), CPU seconds $(cpu_seconds "$pid")"
    kill -TERM "$pid"
done
wait
cat "$out"/worker-*.json
