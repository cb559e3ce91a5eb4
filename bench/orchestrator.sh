#!/usr/bin/env bash
# Orchestrator benchmark: ALGOS chains of RANKS learnuplets of a trivial bash algorithm
# (workers/examples/orchestrator_bench.rs) run by WORKERS release worker processes on the
# local stack, each uplet's five programs in the sandbox; then the same programs run
# directly one uplet after another, for reference. Prints uplets/s both ways and each
# worker's peak RSS and CPU seconds. Needs the emulator running and deployed
# (make emulator-up deploy-local).   Usage: bench/orchestrator.sh [WORKERS] [ALGOS] [RANKS]
# WORKER_ARGS adds worker flags (e.g. "--concurrency 1": one uplet at a time, so the wall
# time per uplet against the direct run is the orchestrator's latency per uplet).
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1} algos=${2:-20} ranks=${3:-5}
cargo build --release -p fanout-workers --bin worker --example orchestrator_bench
dir=target/release
set -a; . .fanout/local.env; set +a
# shellcheck source=bench/cpu.sh
. bench/cpu.sh
pids=()
for _ in $(seq 1 "$workers"); do
    # shellcheck disable=SC2086
    RUST_LOG=${RUST_LOG:-warn} "$dir"/worker --queues work ${WORKER_ARGS:-} >/dev/null 2>>"${WORKER_LOG:-/dev/null}" &
    pids+=($!)
done
"$dir"/examples/orchestrator_bench "$algos" "$ranks"
for pid in "${pids[@]}"; do
    echo "worker $pid: $(grep VmHWM /proc/"$pid"/status), CPU seconds $(cpu_seconds "$pid")"
    kill -TERM "$pid"
done
wait
