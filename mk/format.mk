# mk/format.mk — the on-disk format (issue #3).
#
#   make openzfs-src     fetch + cache the OpenZFS 2.3.2 source (Debian zfs-linux)
#                        and libclang, for the `openzfs-layout` feature's bindgen
#   make format-fuzz     run the parser fuzz target, FUZZ_RUNS executions (nightly,
#                        cargo-fuzz; not in `make test`)
#   make format-ztest    make real log blocks with ztest and check them against zdb
#
# `cargo test/clippy --all-features` turn `openzfs-layout` on, so both need
# the source first; build.rs finds it through RZIL_OPENZFS_SRC.

RZIL_OPENZFS_VERSION ?= 2.3.2
RZIL_OPENZFS_CACHE ?= $(CURDIR)/.cache/openzfs
RZIL_OPENZFS_SRC ?= $(RZIL_OPENZFS_CACHE)/zfs-$(RZIL_OPENZFS_VERSION)
export RZIL_OPENZFS_VERSION RZIL_OPENZFS_CACHE RZIL_OPENZFS_SRC

.PHONY: openzfs-src
openzfs-src:
	@scripts/openzfs-src.sh >/dev/null

test-cargo lint: openzfs-src

# Real OpenZFS 2.3.2 log blocks made now: ztest (frozen, then killed), zdb
# -ivvvvv, and our parser checked against zdb's text (about 40 s; the first
# run also downloads the Debian packages into .cache/openzfs).
.PHONY: format-ztest
format-ztest: openzfs-src
	scripts/format-ztest-blocks.sh
TEST_TARGETS += format-ztest

# Fuzz the parser (nightly + cargo-fuzz); not part of `make test`.
FUZZ_RUNS ?= 1000000
.PHONY: format-fuzz
format-fuzz:
	scripts/format-fuzz.sh $(FUZZ_RUNS)
