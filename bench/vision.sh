#!/usr/bin/env bash
# Vision benchmark: faces detected, placed, aligned and described (FaceRes) on the
# package images of `make models`, by Fanout's vision module
# (workers/examples/vision_bench.rs) and by the same pipeline in Python with onnxruntime
# (bench/vision.py, the manifest's onnxruntime wheel), one thread each, one after the
# other in one run. Prints one JSON line per pipeline: images/s, faces found, peak RSS.
#
# Needs `make models`.   Usage: bench/vision.sh [ROUNDS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
profile=${PROFILE:-release}
models=${FANOUT_MODELS_DIR:-$PWD/.fanout/models}
[ -f "$models/faceres.onnx" ] || { echo "no models in $models: run make models" >&2; exit 1; }
cargo build --quiet --profile "$profile" -p fanout-workers --example vision_bench
dir=target/$([ "$profile" = dev ] && echo debug || echo "$profile")
images=("$models/images/t1.jpg" "$models/images/zidane.jpg" "$models/images/bus.jpg")
export OMP_NUM_THREADS=1
FANOUT_MODELS_DIR="$models" "$dir/examples/vision_bench" "$rounds" "${images[@]}"
.venv-models-check/bin/python bench/vision.py "$models" "$rounds" "${images[@]}"
