# The core (issue #2): its callgrind cost per committed record.
.PHONY: bench-core
BENCH_TARGETS += bench-core

bench-core:
	scripts/bench-core.sh
