#!/usr/bin/env bash
# Hold the Rust view of the ioctl ABI (host/src/kernel/abi.rs) to the one
# header both sides build from, kmod/rzil_ioctl.h: the host crate renders
# every structure size and alignment, field offset and size, constant and
# request number it uses as a C _Static_assert (example
# kernel_abi_asserts), and clang-19 compiles them for x86_64-unknown-freebsd
# against the header and FreeBSD's userland headers (sys/ioccom.h gives the
# request encoding). Any drift is a compile error naming the item.
#
# Then a self-test: copies of the asserts with one value off (a request
# number, a field offset) must fail to compile, so the check cannot pass
# by checking nothing.
#
# Needs scripts/kmod-setup.sh (clang-19 and the FreeBSD headers under
# .cache/kmod); `make check-kernel-abi` runs it first.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_root"
# shellcheck source=/dev/null
. .cache/kmod/env.sh
out="${CARGO_TARGET_DIR:-target}/kernel-abi"
mkdir -p "$out"

die() { printf 'check-kernel-abi: error: %s\n' "$*" >&2; exit 1; }

compile() {
	"clang-$RZIL_KMOD_LLVM_MAJOR" -target x86_64-unknown-freebsd15.0 \
	    -D__FreeBSD_version=1500001 -nostdinc \
	    -isystem "$RZIL_KMOD_FREEBSD_INCLUDE/x86_64-freebsd-none" \
	    -isystem "$RZIL_KMOD_FREEBSD_INCLUDE/generic-freebsd" \
	    -I kmod -std=c11 -Wall -Werror -fsyntax-only "$1"
}

${CARGO:-cargo} run --quiet -p rzil-host --example kernel_abi_asserts >"$out/asserts.c"
count=$(grep -c '^_Static_assert' "$out/asserts.c")
[ "$count" -gt 0 ] || die "no assertions generated"
compile "$out/asserts.c" || die "host/src/kernel/abi.rs disagrees with kmod/rzil_ioctl.h (above)"

# Self-test: each mutation must be caught, by the assertion it broke.
mutate() {
	local name="$1" pattern="$2" replacement="$3" expect="$4"
	sed "s/$pattern/$replacement/" "$out/asserts.c" >"$out/mutant-$name.c"
	cmp -s "$out/asserts.c" "$out/mutant-$name.c" && die "self-test $name: nothing mutated"
	if compile "$out/mutant-$name.c" 2>"$out/mutant-$name.err"; then
		die "self-test $name: a wrong value compiled"
	fi
	grep -q "$expect" "$out/mutant-$name.err" ||
	    die "self-test $name: failed for another reason: $(head -3 "$out/mutant-$name.err")"
}
mutate request '(RZIL_IOC_COMMIT) == \([0-9]*\)ULL' '(RZIL_IOC_COMMIT) == 1\1ULL' \
    'RZIL_IOC_COMMIT is not'
mutate offset 'rr_payload_bytes)) == \([0-9]*\)ULL' 'rr_payload_bytes)) == 9\1ULL' \
    'offsetof(struct rzil_ioc_append, rr_payload_bytes) is not'
echo "check-kernel-abi: $count assertions hold for x86_64-unknown-freebsd; 2 mutants caught"
