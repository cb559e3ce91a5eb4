#!/usr/bin/env bash
# Estimator on the local stack: one task over a zip of IMAGES augmented copies of the
# package images (workers/examples/estimator_run.rs), run once per worker count in
# COUNTS (default "1 2"), each worker a release process with one vision thread and
# CONCURRENCY subtasks at a time (default 1: a worker is about one core, so the counts
# show the fan-out); prints per run the example's JSON line (wall time, images/s,
# faces), each worker's peak RSS and CPU seconds, and the machine's busy CPU seconds
# over the run (the machine is shared: CPU seconds per image is the steadier number).
# Needs `make models` and the emulator running and deployed (make emulator-up
# deploy-local). Results in BENCHMARKS.md ("Estimator").
#   Usage: bench/estimator.sh [IMAGES] [PER_SUBTASK] [COUNTS...]
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-1000} per=${2:-50} concurrency=${CONCURRENCY:-1}
counts=("${@:3}")
[ ${#counts[@]} -gt 0 ] || counts=(1 2)
cargo build --release -p fanout-workers --bin worker --example estimator_run
set -a; . .fanout/local.env; set +a
export FANOUT_MODELS_DIR=${FANOUT_MODELS_DIR:-$PWD/.fanout/models}
# shellcheck source=bench/cpu.sh
. bench/cpu.sh
pids=()
# The workers go whatever happens: left running, they would take the next run's messages.
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
for n in "${counts[@]}"; do
    pids=()
    for _ in $(seq 1 "$n"); do
        FANOUT_VISION_THREADS=1 FANOUT_WORKER_CONCURRENCY=$concurrency RUST_LOG=warn \
            target/release/worker &
        pids+=($!)
    done
    echo "== $n worker(s), $concurrency subtask(s) at a time each"
    before=$(machine_cpu)
    target/release/examples/estimator_run "$images" "$per"
    echo "machine busy CPU seconds over the run: $(awk -v a="$before" -v b="$(machine_cpu)" 'BEGIN { printf "%.1f", b - a }')"
    for pid in "${pids[@]}"; do
        echo "worker $pid: $(grep VmHWM /proc/"$pid"/status), CPU $(cpu_seconds "$pid") s"
    done
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
done
