# Fanout developer entry points (GNU make).
#
#   make run    local stack: emulator + deployed data resources + API gateway (+ workers)
#   make test   everything CI runs: fmt, clippy, cfn-lint, emulator, deploy, cargo test
#
# The emulator listens on 127.0.0.1:$(FANOUT_EMULATOR_PORT) (default 4566): LocalStack
# when a Docker engine answers, moto_server from .venv otherwise. localstack/deploy.sh
# writes .fanout/local.env, which run and test export into the Rust processes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

VENV := .venv
LOCAL_ENV := .fanout/local.env

# --- workers --------------------------------------------------------------------------
# WORKERS START HERE: when workers/ has binaries, name the package and the binaries and
# `make run` builds them and starts each one in the background next to the gateway,
# with the same .fanout/local.env, e.g.
#   WORKER_PACKAGE := fanout-workers
#   WORKER_BINS    := worker
WORKER_PACKAGE ?=
WORKER_BINS ?=

.PHONY: venv emulator-up deploy-local emulator-down lint-infra run test

venv:
	bash localstack/venv.sh

emulator-up: venv
	bash localstack/start.sh

deploy-local:
	bash localstack/deploy.sh

emulator-down:
	bash localstack/stop.sh

lint-infra: venv
	$(VENV)/bin/cfn-lint infra/template.yaml

run: emulator-up deploy-local
	cargo build -p fanout-functions --bin gateway
ifneq ($(strip $(WORKER_BINS)),)
	cargo build -p $(WORKER_PACKAGE) $(addprefix --bin ,$(WORKER_BINS))
endif
	set -a; . $(LOCAL_ENV); set +a; \
	for worker in $(WORKER_BINS); do \
	    echo "run: starting worker $$worker"; \
	    target/debug/$$worker & \
	done; \
	exec target/debug/gateway

# One recipe so that the emulator is stopped whatever happens after it started;
# the EXIT trap keeps the failing command's status, so make still fails.
test:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory lint-infra
	trap 'bash localstack/stop.sh' EXIT; \
	$(MAKE) --no-print-directory emulator-up; \
	$(MAKE) --no-print-directory deploy-local; \
	set -a; . $(LOCAL_ENV); set +a; \
	cargo test --workspace
