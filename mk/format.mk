# mk/format.mk — the on-disk format (issue #3).
#
#   make openzfs-src     fetch + cache the OpenZFS 2.3.2 source (Debian zfs-linux)
#                        and libclang, for the `openzfs-layout` feature's bindgen
#   make format-fuzz     run the parser fuzz target (nightly, cargo-fuzz; not in `make test`)
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
