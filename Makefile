# Ember: the two commands a newcomer needs are `make run` and `make test`.
# Both install what a fresh Debian/Ubuntu machine lacks first (`make deps`).

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages: clang + libclang for RocksDB's bindings (the build), chromium for the
# dashboard test (it loads the testnet dashboard headless and checks what it shows).
APT_PACKAGES := clang libclang-dev chromium
TESTNET_ARGS ?=

.PHONY: all deps build run test lint fmt bench bench-net fuzz clean image

all: build

## deps: install missing system packages (apt-get; sudo when not root)
deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Every cargo command below selects the same targets (`--workspace --all-targets`), so cargo
# resolves one feature set and RocksDB's C++ (the slow part of a cold build) compiles once.
# Dependencies are optimised even in this profile (see Cargo.toml), so the debug binaries
# are fast enough to run a network.
CARGO_SEL := --workspace --all-targets
# A CI build starts from nothing and is thrown away: incremental compilation only costs time.
ifdef CI
export CARGO_INCREMENTAL := 0
endif
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

## build: debug build of every crate, tests and binaries included
build: deps
	$(CARGO) build $(CARGO_SEL)

## run: install what is missing, build, and start a local 4-node testnet with its dashboard
## (prints the dashboard URL and the wallet commands; Ctrl-C stops every node)
run: build
	$(TARGET_DIR)/debug/ember-testnet up $(TESTNET_ARGS)

## test: formatting, lints and every test in the workspace
# A test that starts ember-node, ember-wallet or ember-testnet builds them first (a plain
# `cargo test` would run stale ones); here `build` has just built them with this very
# selection, so EMBER_BIN_DIR points the tests at them instead (a narrower build of the
# binaries would resolve other features and compile them again).
test: build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_SEL) -- -D warnings
	EMBER_BIN_DIR=$(abspath $(TARGET_DIR))/debug $(CARGO) test $(CARGO_SEL)

## image: release build, then Ember's runtime image (docker/Dockerfile) as $(IMAGE).
## BASE=debian:bookworm-slim where a registry is reachable; the default, ember-base:bookworm,
## is made here from Debian's mirror with debootstrap (docker/base-image.sh).
IMAGE ?= ember:local
BASE ?= ember-base:bookworm
image: deps
	$(CARGO) build --release $(CARGO_SEL)
	docker/build-image.sh $(TARGET_DIR)/release $(IMAGE) $(BASE)

## lint: formatting and clippy only
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_SEL) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: criterion benchmarks (figures printed per benchmark), then the network benchmark
bench: deps
	$(CARGO) bench --workspace
	$(MAKE) bench-net

## bench-net: release build, then `ember-testnet bench` on real nodes (BENCH_ARGS=--quick
## for the 3-minute version); the table is the one in docs/PERFORMANCE.md
BENCH_ARGS ?=
bench-net: deps
	$(CARGO) build --release $(CARGO_SEL)
	$(TARGET_DIR)/release/ember-testnet bench $(BENCH_ARGS)

## fuzz: every fuzz target for FUZZ_SECONDS each (cargo-fuzz, libFuzzer; installed if missing)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := tx block address amount genesis keystore p2p rpc
# These keep one node (runtime, chain, connection) across inputs on purpose; what that
# node holds between inputs is not a leak, so leak detection is off for them.
FUZZ_STATEFUL := p2p|rpc
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
# The fuzz build keeps its own target dir: sanitizer flags would rebuild everything else.
FUZZ_ENV := RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(abspath fuzz/target)
fuzz: deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t && cp -n fuzz/seeds/$$t/* fuzz/corpus/$$t/ 2>/dev/null; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  case $$t in $(FUZZ_STATEFUL)) leaks=0;; *) leaks=1;; esac; \
	  ASAN_OPTIONS=detect_leaks=$$leaks $(FUZZ_ENV) $(CARGO) fuzz run -O $$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -detect_leaks=$$leaks || exit 1; \
	done

clean:
	$(CARGO) clean
