#!/usr/bin/env bash
# Sandbox start overhead: how long one start of a program takes through the orchestrator's
# sandbox (workers/src/sandbox.rs: directory handed to nobody, rlimits, network namespace
# and user switch when run as root, no_new_privs and seccomp, group kill at the end)
# against a plain tokio spawn of the same program. Runs `/bin/true` RUNS times and
# `python3 -c pass` RUNS/10 times each way, alternating, and prints a Markdown table of
# the median and 90th percentile per start (workers/examples/sandbox_start.rs). Needs no
# stack; run as root to measure the namespace and user switch too.
#   Usage: bench/sandbox.sh [RUNS]      (RUNS defaults to 200)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200}
cargo build --release -p fanout-workers --example sandbox_start
target/release/examples/sandbox_start "$runs"
