# darkport: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
BIN := target/debug/darkport

.PHONY: all build demo test lint fmt deps bench clean nodes nodes-down dist dist-check

all: build

build:
	$(CARGO) build

# Install the Debian packages and tools the demo and the tests use (idempotent).
deps:
	./scripts/deps.sh

# The main job end to end on this machine.
demo: deps build
	./scripts/demo.sh

# Every test: unit + integration on real sshd nodes, registries and skopeo.
test: deps
	$(CARGO) test --all-targets --features fault-injection -- --test-threads=2

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

# Test nodes by hand: `make nodes N=5` (fast sshd nodes; CLUSTER=1 for Docker nodes) prints the
# inventory path; `make nodes-down` stops them.
N ?= 3
nodes:
	@CLUSTER=$(CLUSTER) ./scripts/nodes.sh up $(N)

nodes-down:
	@./scripts/nodes.sh down

bench: deps
	$(CARGO) build --release
	for b in bench/*.sh; do echo "== $$b"; bash $$b || exit 1; done

# The portable release binary for sites (x86_64 Linux, glibc >= 2.17), with its .sha256:
# dist/darkport-<version>-x86_64-linux.
dist:
	./scripts/dist.sh

# Runs that binary in a Debian bullseye (glibc 2.31) chroot: --version and registry serve
# answering GET /v2/; the debug build must fail there. Needs root; not part of `make test`.
dist-check:
	./scripts/dist-check.sh "$$(./scripts/dist.sh)"

clean:
	$(CARGO) clean
	rm -rf dist .nodes
