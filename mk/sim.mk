# mk/sim.mk — the deterministic simulator (issue #5).
#
#   make sim        long soak: SIM_SEEDS on the real core, then on the
#                   OpenZFS 2.2.0 model with every bug switch off (release)
#   make test-sim   the bounded sweep of `make test` (release, about a
#                   minute on 2 cores): the real core over SIM_TEST_SEEDS
#                   and over 300 seeds each with no-cache-device and
#                   with itx-pool, the OpenZFS
#                   2.2.0 model over SIM_TEST_SEEDS, every historic-bug
#                   switch caught within its bound (sim/tests/bug_corpus.rs,
#                   #15278 included). The oracle catching a lying-flush
#                   device is sim/tests/sweep.rs, run by `cargo test`.
#
# Replay one seed (a failing seed prints its trace; --trace prints any
# seed's; --help lists every option):
#   ./target/release/rzil-sim --seeds 42..43 [--model ozfs-2.2.0 --bug 15233] [--trace]

SIM_SEEDS ?= 0..100000
SIM_TEST_SEEDS ?= 0..1000
SIM_BIN := ./target/release/rzil-sim

.PHONY: sim sim-build test-sim
sim-build:
	$(CARGO) build --release -p rzil-sim

sim: sim-build
	$(SIM_BIN) --seeds $(SIM_SEEDS) --model rzil
	$(SIM_BIN) --seeds $(SIM_SEEDS) --model ozfs-2.2.0

test-sim: sim-build
	$(SIM_BIN) --seeds $(SIM_TEST_SEEDS) --model rzil --json
	$(SIM_BIN) --seeds 5000..5300 --model rzil --faults default,no-cache-device --json
	$(SIM_BIN) --seeds 6000..6300 --model rzil --faults default,itx-pool --json
	$(SIM_BIN) --seeds $(SIM_TEST_SEEDS) --model ozfs-2.2.0 --json
	$(CARGO) test --release -p rzil-sim --test bug_corpus -- --include-ignored

TEST_TARGETS += test-sim
