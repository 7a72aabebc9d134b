# mk/gdb.mk — scripts/gdb/rzil.py, the gdb/kgdb commands for crash dumps
# (DESIGN.md user story 2; see kmod/README.md "After a panic").
#
#   make test-gdb   run host/examples/gdb_target under gdb and hold what
#                   `rzil lwbs/waiters/zil` print to the program's own
#                   view, clean and after it trashes two lwb list slots
#                   the way the 2023 use-after-free did; then `rzil
#                   selfcheck` on kmod/rzil.ko.debug and the host
#                   binaries, so the script cannot go stale (~10 s warm)

GDB_TARGET := target/debug/examples/gdb_target

.PHONY: test-gdb
test-gdb: kmod
	scripts/gdb-setup.sh
	$(CARGO) build -q -p rzil-host --bin rzil --example gdb_target
	python3 scripts/gdb/test-rzil-gdb.py --target $(GDB_TARGET) \
		--host-bin target/debug/rzil --kmod-debug kmod/rzil.ko.debug

TEST_TARGETS += test-gdb
