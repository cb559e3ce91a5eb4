#!/usr/bin/env bash
# Distributed cross match on the local stack: REFS × CANDS faces with 512-float
# descriptors, blocks of PER_BLOCK, WORKERS worker processes; prints the run's JSON line
# (load time, task wall time, subtask count, brute-force spot check) and each worker's
# peak RSS. Needs the emulator running and deployed (make emulator-up deploy-local).
#   Usage: bench/cross_match.sh [WORKERS] [REFS] [CANDS] [PER_BLOCK]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-2} refs=${2:-100000} cands=${3:-100000} per=${4:-5000}
cargo build --release -p fanout-workers --bin worker --example cross_match_run
set -a; . .fanout/local.env; set +a
pids=()
# The workers go whatever happens: left running, they would take the next run's messages.
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 "$workers"); do
    RUST_LOG=warn target/release/worker &
    pids+=($!)
done
target/release/examples/cross_match_run "$refs" "$cands" "$per"
for pid in "${pids[@]}"; do
    echo "worker $pid: $(grep VmHWM /proc/"$pid"/status)"
done
