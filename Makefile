# `make run` and `make test` work on a fresh Debian machine with the Swift toolchain:
# each installs what is missing first (scripts/install-deps.sh).
SWIFT ?= swift
PYTHON ?= python3

.PHONY: all deps build release run test unit e2e fuzz bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	@scripts/demo.sh

unit: build
	$(SWIFT) test

e2e: build
	REMORA_BIN=$(CURDIR)/.build/debug/remora $(PYTHON) -m pytest -q Tests/e2e

test: deps build
	$(SWIFT) test
	REMORA_BIN=$(CURDIR)/.build/debug/remora $(PYTHON) -m pytest -q Tests/e2e

fuzz:
	fuzz/run.sh $(or $(SECONDS),300)

# side by side with HAProxy, nginx and nghttpx: bench/RESULTS.md and bench/results.png
# (BENCH_ARGS passes options through, e.g. BENCH_ARGS="--rounds 5"; see bench/run --help)
bench: release
	REMORA_BIN=$(CURDIR)/.build/release/remora PYTHON=$(PYTHON) bench/run $(BENCH_ARGS)

clean:
	rm -rf .build .build-fuzz
