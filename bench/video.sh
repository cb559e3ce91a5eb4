#!/usr/bin/env bash
# Video analysis on the local stack (workers/examples/video_run.rs): one deferred
# people_count task over a clip of MINUTES minutes (default 10; every PERIOD-th frame,
# default 10; SEGMENTS segments, default 20), run once per worker count in COUNTS
# (default "1 2"); each worker a release process with one vision thread taking one
# segment at a time (a worker is about one core, so the counts show the fan-out). Prints
# per run the example's JSON line (wall time, sampled frames/s) and each worker's CPU
# seconds. Needs `make models`, ffmpeg, and the emulator running and deployed
# (make emulator-up deploy-local). Results in BENCHMARKS.md ("Video").
#   Usage: bench/video.sh [MINUTES] [PERIOD] [SEGMENTS] [COUNTS...]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10} period=${2:-10} segments=${3:-20}
counts=("${@:4}")
[ ${#counts[@]} -gt 0 ] || counts=(1 2)
bash workers/ffmpeg.sh
cargo build --release -p fanout-workers --bin worker --example video_run
set -a; . .fanout/local.env; set +a
export FANOUT_MODELS_DIR=${FANOUT_MODELS_DIR:-$PWD/.fanout/models}
# shellcheck source=bench/cpu.sh
. bench/cpu.sh
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
for n in "${counts[@]}"; do
    pids=()
    for _ in $(seq 1 "$n"); do
        FANOUT_VISION_THREADS=1 FANOUT_WORKER_CONCURRENCY=1 FANOUT_WORKER_STREAMS=0 RUST_LOG=warn \
            target/release/worker &
        pids+=($!)
    done
    echo "== $n worker(s), one segment at a time each"
    target/release/examples/video_run "$minutes" "$period" "$segments"
    for pid in "${pids[@]}"; do
        echo "worker $pid: CPU $(cpu_seconds "$pid") s"
    done
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
done
