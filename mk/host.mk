# rzil-host (host/): the std platform and the `rzil` command.
#
#   make bench-host   rzil bench at 1/4/16/64 committers, 4 KiB records, on a
#                     file-backed device under target/ (rzil and the naive
#                     pwrite+fdatasync baseline, interleaved per thread count)
#   make bench-host-floor  the ceiling of any design that puts each of 64
#                     committers to sleep once per commit (no log, no I/O;
#                     host/examples/wake_floor.rs), with a futex wake per
#                     committer and with one per batch (what the platform
#                     does per lwb): what bench-host's 64-committer figure
#                     can at most be on this machine
#   make bench-host-ceiling  the device's own ceiling for 64 committers of
#                     4 KiB records (host/examples/device_ceiling.rs): K
#                     flushers each pwrite 64/K records at once and
#                     fdatasync, no CPU work between, K = 1..64; with the
#                     naive baseline of the same run and whether 7x it
#                     fits under that ceiling; buffered, then O_DIRECT
#
#   check-kernel-abi    host/src/kernel/abi.rs against kmod/rzil_ioctl.h
#   check-host-freebsd  cargo check of rzil-host for x86_64-unknown-freebsd
#
# The host crate's unit tests and CLI tests (host/tests/cli.rs) run under
# `make test` through `cargo test --workspace`, and the two checks above
# through TEST_TARGETS.

RZIL_BENCH_DEV ?= target/rzil-bench.dev
RZIL_BENCH_SECONDS ?= 5

BENCH_TARGETS += bench-host bench-host-floor bench-host-ceiling

.PHONY: bench-host bench-host-floor bench-host-ceiling
bench-host: build
	./target/release/rzil bench --dev $(RZIL_BENCH_DEV) --create --size 256M \
		--threads 1,4,16,64 --seconds $(RZIL_BENCH_SECONDS) --record 4K

bench-host-floor:
	$(CARGO) run --release -q -p rzil-host --example wake_floor -- 64 $(RZIL_BENCH_SECONDS)

bench-host-ceiling:
	rm -f target/rzil-ceiling.dev
	$(CARGO) run --release -q -p rzil-host --example device_ceiling -- \
		target/rzil-ceiling.dev 64 $(RZIL_BENCH_SECONDS) 4096
	$(CARGO) run --release -q -p rzil-host --example device_ceiling -- \
		target/rzil-ceiling.dev 64 $(RZIL_BENCH_SECONDS) 4096 direct

# Type-check rzil-host for FreeBSD (the DIOCGMEDIASIZE/DIOCGSECTORSIZE and
# disk-character-device code and the rzil.ko backend's ioctl(2) calls under
# cfg(target_os = "freebsd"), tests and examples included), with the kmod
# toolchain's rustc building std from source. A cold run takes ~1.5 min of
# one core (target/host-freebsd caches it), so `make test` runs it.
.PHONY: check-host-freebsd
check-host-freebsd:
	scripts/kmod-setup.sh
	. .cache/kmod/env.sh && RUSTC="$$RZIL_KMOD_RUSTC" RUSTC_BOOTSTRAP=1 \
		CARGO_TARGET_DIR=target/host-freebsd $(CARGO) check -p rzil-host \
		--all-targets --target x86_64-unknown-freebsd -Zbuild-std=std,panic_abort

# Hold the Rust view of the ioctl ABI (host/src/kernel/abi.rs) to
# kmod/rzil_ioctl.h: clang-19 compiles the host's layout assertions for
# x86_64-unknown-freebsd against the header (scripts/check-kernel-abi.sh).
.PHONY: check-kernel-abi
check-kernel-abi:
	scripts/kmod-setup.sh
	scripts/check-kernel-abi.sh

TEST_TARGETS += check-kernel-abi check-host-freebsd
