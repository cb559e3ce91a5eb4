#!/usr/bin/env bash
# Export of events on the local stack, once per size given: loads SIZE events into a new
# account, exports them (every column, no images) and checks every row of the archive
# (workers/examples/export_run.rs prints one JSON line per run). Each run gets two fresh
# worker processes, one per role, so their peak RSS (VmHWM) separates the subtasks
# (work worker) from the planning and the merge (control worker).
# Needs the emulator running and deployed (make emulator-up deploy-local).
#   Usage: bench/export.sh [SIZE...]        (default: 20000 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(20000 200000)
cargo build --release -p fanout-workers --bin worker --example export_run
set -a; . .fanout/local.env; set +a
pids=()
# The workers go whatever happens: left running, they would take the next run's messages.
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
for size in "${sizes[@]}"; do
    RUST_LOG=warn target/release/worker --queues work &
    work=$!
    RUST_LOG=warn target/release/worker --queues control &
    control=$!
    pids=("$work" "$control")
    target/release/examples/export_run "$size"
    echo "size $size: work worker $(grep VmHWM /proc/"$work"/status | tr -s ' ')," \
        "control worker (plan + merge) $(grep VmHWM /proc/"$control"/status | tr -s ' ')"
    kill -TERM "$work" "$control"
    wait "$work" "$control" || true
done
