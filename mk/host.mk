# rzil-host (host/): the std platform and the `rzil` command.
#
#   make bench-host   rzil bench at 1/4/16/64 committers, 4 KiB records, on a
#                     file-backed device under target/ (rzil and the naive
#                     pwrite+fdatasync baseline, interleaved per thread count)
#
# The host crate's unit tests and CLI tests (host/tests/cli.rs) run under
# `make test` through `cargo test --workspace`.

RZIL_BENCH_DEV ?= target/rzil-bench.dev
RZIL_BENCH_SECONDS ?= 5

BENCH_TARGETS += bench-host

.PHONY: bench-host
bench-host: build
	./target/release/rzil bench --dev $(RZIL_BENCH_DEV) --create --size 256M \
		--threads 1,4,16,64 --seconds $(RZIL_BENCH_SECONDS) --record 4K
