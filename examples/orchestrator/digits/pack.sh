#!/usr/bin/env bash
# Builds the digits example's archives and data items into <out_dir>:
#   logreg.zip, forest.zip  algorithms: train + predict at the zip's root
#   workflow.zip            the problem's scorer: score at the zip's root
#   data/                   make_data.py's items (train_<i>.npz, test_<i>.npz) + manifest.json
# The zips store unix modes (the programs stay executable) and a fixed timestamp, so the same
# sources give the same bytes. make_data.py runs in the venv of ../venv.sh (created if missing).
#
# Usage: pack.sh <out_dir> [make_data.py options, e.g. --train-items 6 --test-items 2]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 <out_dir> [make_data.py options]" >&2; exit 2; }
OUT="$1"
shift
mkdir -p "$OUT"
BIN="$("$HERE/../venv.sh")"

# zip_dir <src_dir> <out.zip>: every file under src_dir, at the archive's root, sorted, with
# its mode (0755 when executable, else 0644) and a fixed date.
zip_dir() {
    "$BIN/python" - "$1" "$2" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
files = []
for root, dirs, names in os.walk(src):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    files += [os.path.join(root, n) for n in names]
with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as zf:
    for path in sorted(files, key=lambda p: os.path.relpath(p, src)):
        info = zipfile.ZipInfo(os.path.relpath(path, src), date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            zf.writestr(info, f.read())
os.replace(out + ".tmp", out)
PY
}

for name in logreg forest workflow; do
    zip_dir "$HERE/$name" "$OUT/$name.zip"
done
"$BIN/python" "$HERE/make_data.py" "$OUT/data" "$@"
echo "digits: packed logreg.zip forest.zip workflow.zip and data/ into $OUT" >&2
