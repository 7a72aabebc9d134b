# FreeBSD kernel module (issue #6): `make kmod` cross-builds kmod/rzil.ko on
# Linux; `make test` also runs the structural checks and their self-test.
# See kmod/README.md; the native FreeBSD build is `make -C kmod`.

KMOD_CHECK_ARGS := \
	--headers .cache/kmod/freebsd-include/generic-freebsd \
	--headers .cache/kmod/freebsd-include/x86_64-freebsd-none \
	--stack-waivers kmod/stack-frame.waivers

.PHONY: kmod test-kmod kmod-check kmod-check-selftest kmod-lint

kmod:
	scripts/kmod-build.sh

kmod-check: kmod
	python3 scripts/kmod-check.py $(KMOD_CHECK_ARGS) kmod/rzil.ko

kmod-check-selftest: kmod
	python3 scripts/kmod-check-selftest.py

kmod-lint:
	scripts/kmod-build.sh lint

test-kmod: kmod-check kmod-check-selftest kmod-lint

TEST_TARGETS += test-kmod
