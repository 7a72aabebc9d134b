# mk/vmci.mk — the FreeBSD VM test scripts/freebsd-vm-test.sh and the two CI
# definitions that run it (.cirrus.yml, .github/workflows/freebsd.yml;
# DESIGN.md "Verification" item 5, kmod/README.md "Testing in a FreeBSD VM").
# This machine cannot boot FreeBSD, so:
#
#   make check-vmci   sh -n + shellcheck on the script; its refusals on Linux
#                     and on bad arguments; a full run under a fake FreeBSD
#                     (recording stand-ins for uname, pkg, make, mdconfig,
#                     kldload, ...), its failure paths and their cleanup;
#                     kmod/README.md's command lists against --dry-run; the
#                     structure of both CI files (~2 s warm)

.PHONY: check-vmci
check-vmci:
	scripts/vmci-setup.sh
	python3 scripts/vmci-check.py

TEST_TARGETS += check-vmci
