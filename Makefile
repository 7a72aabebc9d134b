# rzil — top-level Makefile.
#
#   make run    build the release `rzil` and run the main job (stress + crash check)
#   make test   everything CI checks (see TEST_TARGETS below and mk/*.mk)
#   make kmod   cross-build kmod/rzil.ko on Linux (see kmod/README.md)
#   make bench  benchmarks (not part of `make test`)
#
# Each mk/*.mk fragment adds its own checks to TEST_TARGETS.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

TEST_TARGETS := test-cargo lint
BENCH_TARGETS :=

.PHONY: all run test test-cargo lint fmt build bench
all: build

build:
	$(CARGO) build --workspace --release

include $(sort $(wildcard mk/*.mk))

run: build
	./target/release/rzil run

test-cargo:
	$(CARGO) test --workspace --all-features

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	# The libraries, then the rzil binary, in runs of their own: the core
	# library and the host binary are both called rzil and share
	# target/doc/rzil, which one parallel run can race on (cargo#6313).
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --all-features --lib
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p rzil-host --all-features --bin rzil

fmt:
	$(CARGO) fmt --all

bench: $(BENCH_TARGETS)

test: $(TEST_TARGETS)
	@echo "make test: all checks passed ($(TEST_TARGETS))"
