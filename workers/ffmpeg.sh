#!/usr/bin/env bash
# ffmpeg and ffprobe for the video tasks and streams: the workers run them as child
# processes. Debian's package (5.1 on Debian 12) is installed with apt-get when either
# is missing from PATH (sudo when not root). `make test` and `make run` call it; the
# worker image installs the same package (workers/Dockerfile).
set -euo pipefail
log() { echo "ffmpeg: $*"; }
if command -v ffmpeg > /dev/null && command -v ffprobe > /dev/null; then
    exit 0
fi
command -v apt-get > /dev/null || { echo "ffmpeg: not on PATH and no apt-get to install it" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo > /dev/null || { echo "ffmpeg: not on PATH, not root and no sudo to install it" >&2; exit 1; }
    SUDO="sudo"
fi
started=$(date +%s)
log "installing Debian's ffmpeg package"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg > /dev/null
command -v ffprobe > /dev/null || { echo "ffmpeg: apt-get installed ffmpeg but ffprobe is not on PATH" >&2; exit 1; }
log "installed in $(( $(date +%s) - started )) s: $(ffmpeg -version | head -1)"
