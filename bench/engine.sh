#!/usr/bin/env bash
# Engine benchmark: one linker task of FACES/PER_SUBTASK subtasks on the local stack with
# WORKERS worker processes; prints the driver's timing line and each worker's AWS request
# counts (FANOUT_COUNT_REQUESTS=1) and peak RSS. Needs the emulator running and deployed
# (make emulator-up deploy-local).   Usage: bench/engine.sh [WORKERS] [FACES] [PER_SUBTASK]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1} faces=${2:-10000} per=${3:-10}
profile=${PROFILE:-release}
cargo build --profile "$profile" -p fanout-workers --bin worker --example engine_bench
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
set -a; . .fanout/local.env; set +a
out=$(mktemp -d)
pids=()
for i in $(seq 1 "$workers"); do
    FANOUT_COUNT_REQUESTS=1 RUST_LOG=warn "$dir"/worker --wait-seconds 2 >"$out/worker-$i.json" &
    pids+=($!)
done
"$dir"/examples/engine_bench "$faces" "$per"
for pid in "${pids[@]}"; do grep VmHWM /proc/$pid/status; kill -TERM "$pid"; done
wait
cat "$out"/worker-*.json
