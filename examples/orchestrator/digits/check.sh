#!/usr/bin/env bash
# Runs the digits example through the archive contract locally, with no server: the venv,
# pack.sh into a temp dir, then for each algorithm a chain of three learning ranks the way the
# orchestrator's worker runs them (rank 0 from the algorithm's zip on train items 0-1, rank 1
# from rank 0's model zip on items 2-3, rank 2 on items 4-5), each model scored on the test
# items with the workflow, and a prediction job on one test item. Programs run as in the
# worker's sandbox as far as a plain shell can: cleared environment, the venv's bin first on
# PATH, HOME/TMPDIR in a scratch dir, one BLAS/OpenMP thread, 2 GiB address space; data items
# are staged under names with no extension. Prints each step's time and the perf per rank;
# exits non-zero when a program fails or logreg's final accuracy is below 0.9.
#
# Usage: check.sh   (KEEP=1 keeps the work dir and prints its path; MIN_LOGREG_PERF=0.9 the bar)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MIN_LOGREG_PERF="${MIN_LOGREG_PERF:-0.9}"

# elapsed <start ns>: seconds since then, two decimals (pure bash: no bc needed).
elapsed() {
    local cs=$(( ($(date +%s%N) - $1) / 10000000 ))
    printf '%d.%02d' $((cs / 100)) $((cs % 100))
}

t0=$(date +%s%N)
BIN="$("$HERE/../venv.sh")"
PY="$BIN/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/digits-check.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then
    echo "work dir: $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
printf '%7ss  venv.sh\n' "$(elapsed "$t0")"

# step <label> <command...>: runs the command, prints its wall time, stops the check if it fails.
step() {
    local label="$1" start rc=0
    shift
    start=$(date +%s%N)
    "$@" || rc=$?
    printf '%7ss  %s\n' "$(elapsed "$start")" "$label"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL: $label exited $rc" >&2
        exit 1
    fi
}

# sandboxed <cwd> <program> [args...]: a program of an archive, run as the worker runs it.
sandboxed() {
    local cwd="$1" scratch
    shift
    scratch="$(mktemp -d "$WORK/scratch.XXXXXX")"
    (
        cd "$cwd" || exit 1
        ulimit -v 2097152 || exit 1
        exec env -i PATH="$BIN:/usr/local/bin:/usr/bin:/bin" HOME="$scratch" TMPDIR="$scratch" \
            OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$@"
    )
}

# unzip_to <zip> <dir>: extracts with the unix modes stored in the zip.
unzip_to() {
    "$PY" - "$1" "$2" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    for info in zf.infolist():
        path = zf.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
PY
}

# zip_from <dir> <zip>: the whole dir (code + model/) at the archive's root, modes kept.
zip_from() {
    "$PY" - "$1" "$2" <<'PY'
import os, sys, zipfile
src = sys.argv[1]
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as zf:
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            zf.write(path, os.path.relpath(path, src))
PY
}

# stage <dir> <item.npz...>: copies data items into dir under their names without extension.
stage() {
    local dir="$1" item
    shift
    mkdir -p "$dir"
    for item in "$@"; do
        cp "$WORK/pack/data/$item" "$dir/${item%.npz}"
    done
}

perf_of() {
    "$PY" -c 'import json, sys; print("%.4f" % json.load(open(sys.argv[1]))["perf"])' "$1"
}

step "pack.sh (zips + make_data.py)" "$HERE/pack.sh" "$WORK/pack"
stage "$WORK/test" test_0.npz test_1.npz
mkdir -p "$WORK/workflow"
unzip_to "$WORK/pack/workflow.zip" "$WORK/workflow"

summary=()
for algo in logreg forest; do
    start_zip="$WORK/pack/$algo.zip"
    for rank in 0 1 2; do
        job="$WORK/$algo/rank$rank"
        mkdir -p "$job/code" "$job/test/code"
        # learning task: model-start zip -> code/, train on this rank's items, zip code/
        unzip_to "$start_zip" "$job/code"
        mkdir -p "$job/code/model"
        stage "$job/train" "train_$((2 * rank)).npz" "train_$((2 * rank + 1)).npz"
        step "$algo rank $rank train" sandboxed "$job/code" ./train "$job/train" "$job/code/model"
        zip_from "$job/code" "$job/model.zip"
        # testing the model: fresh extraction of the model zip, predict, score
        unzip_to "$job/model.zip" "$job/test/code"
        step "$algo rank $rank predict (test items)" \
            sandboxed "$job/test/code" ./predict "$job/test/code/model" "$WORK/test" "$job/test/pred"
        step "$algo rank $rank score" \
            sandboxed "$WORK/workflow" ./score "$WORK/test" "$job/test/pred" "$job/test/perf.json"
        summary+=("$(printf '%-7s rank %d  train items %d-%d  test perf %s  %s' "$algo" "$rank" \
            $((2 * rank)) $((2 * rank + 1)) "$(perf_of "$job/test/perf.json")" \
            "$(cat "$job/test/perf.json")")")
        start_zip="$job/model.zip"
    done
    # a prediction job: the final model on one test item
    pjob="$WORK/$algo/prediction"
    mkdir -p "$pjob/code"
    unzip_to "$start_zip" "$pjob/code"
    stage "$pjob/data" test_1.npz
    step "$algo prediction (1 item)" sandboxed "$pjob/code" ./predict "$pjob/code/model" "$pjob/data" "$pjob/out"
    summary+=("$(printf '%-7s prediction on test_1: first labels %s; truth %s' "$algo" \
        "$(head -n 12 "$pjob/out/test_1" | tr '\n' ' ')" \
        "$("$PY" -c 'import numpy as np, sys; print(*np.load(open(sys.argv[1], "rb"))["y"][:12])' "$pjob/data/test_1")")")
done

echo
printf '%s\n' "${summary[@]}"
final="$(perf_of "$WORK/logreg/rank2/test/perf.json")"
printf '%7ss  total\n' "$(elapsed "$t0")"
if ! "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))' "$final" "$MIN_LOGREG_PERF"; then
    echo "FAIL: logreg's final accuracy $final is below $MIN_LOGREG_PERF" >&2
    exit 1
fi
echo "digits check: OK (logreg final accuracy $final >= $MIN_LOGREG_PERF)"
