# rzil-host (host/): the std platform and the `rzil` command.
#
#   make bench-host   rzil bench at 1/4/16/64 committers, 4 KiB records, on a
#                     file-backed device under target/ (rzil and the naive
#                     pwrite+fdatasync baseline, interleaved per thread count)
#   make bench-host-floor  the ceiling of any design that puts each of 64
#                     committers to sleep once per commit (no log, no I/O;
#                     host/examples/wake_floor.rs): what bench-host's 64-
#                     committer figure can at most be on this machine
#
# The host crate's unit tests and CLI tests (host/tests/cli.rs) run under
# `make test` through `cargo test --workspace`.

RZIL_BENCH_DEV ?= target/rzil-bench.dev
RZIL_BENCH_SECONDS ?= 5

BENCH_TARGETS += bench-host bench-host-floor

.PHONY: bench-host bench-host-floor
bench-host: build
	./target/release/rzil bench --dev $(RZIL_BENCH_DEV) --create --size 256M \
		--threads 1,4,16,64 --seconds $(RZIL_BENCH_SECONDS) --record 4K

bench-host-floor:
	$(CARGO) run --release -q -p rzil-host --example wake_floor -- 64 $(RZIL_BENCH_SECONDS)

# Type-check rzil-host for FreeBSD (the DIOCGMEDIASIZE/DIOCGSECTORSIZE and
# disk-character-device code under cfg(target_os = "freebsd")), with the
# kmod toolchain's rustc building std from source. Opt-in: a cold run takes
# a few minutes; add it to TEST_TARGETS when the CI budget allows.
.PHONY: check-host-freebsd
check-host-freebsd: kmod
	. .cache/kmod/env.sh && RUSTC="$$RZIL_KMOD_RUSTC" RUSTC_BOOTSTRAP=1 \
		CARGO_TARGET_DIR=target/host-freebsd $(CARGO) check -p rzil-host \
		--target x86_64-unknown-freebsd -Zbuild-std=std,panic_abort
