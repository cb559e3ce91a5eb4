#!/usr/bin/env bash
# Vector kernel benchmark: Fanout's cross match top-k, clustering and ROC against faiss,
# NumPy+SciPy and scikit-learn on the same data, one core each; also measures the f32 FMA
# peak, the kernel's peak memory, and rewrites shared/tests/fixtures/roc_sklearn.json.
# Makes its own venv (bench/.venv-vectors) with pinned packages from PyPI.
#   Usage: bench/vectors.sh [--refs N] [--cands N] [--dim D] [--k K] [--cluster N]
#          [--threshold T] [--roc-pairs N] [--only SECTION...] [--tile-sweep RxC...]
#   (bench/vectors.sh --help lists every flag; defaults take about 1.5 minutes here, plus the first build and venv.)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=bench/.venv-vectors
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check \
    faiss-cpu==1.15.1 numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1
cargo build --release -p fanout --example vectors_bench
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$venv/bin/python" bench/vectors.py \
    --bin "${CARGO_TARGET_DIR:-target}/release/examples/vectors_bench" "$@"
